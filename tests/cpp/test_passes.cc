// One test per preparation pass (src/passes/), on TorchScript IR, checked FileCheck-style as
// PyTorch tests its own passes: what the pass must rewrite, what it must leave alone, and that
// it says whether it changed the graph.
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <torch/csrc/jit/ir/irparser.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/testing/file_check.h>
#include <torch/script.h>

#include "passes/passes.h"

namespace tvmbridge::passes {
namespace {

using torch::jit::testing::FileCheck;

std::shared_ptr<torch::jit::Graph> Parse(const std::string& ir) {
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, graph.get());
  return graph;
}

TEST(Passes, FoldNoneChecksFoldsATensorIsNoneBranch) {
  auto graph = Parse(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %none : NoneType = prim::Constant()
      %is_none : bool = aten::__is__(%x, %none)
      %r : Tensor = prim::If(%is_none)
        block0():
          -> (%x)
        block1():
          %y : Tensor = aten::relu(%x)
          -> (%y)
      return (%r))IR");
  EXPECT_TRUE(FoldNoneChecks(graph));
  FileCheck().check_not("aten::__is__")->check_not("prim::If")->check("aten::relu")->run(*graph);
  EXPECT_FALSE(FoldNoneChecks(graph));  // a fixed point
}

TEST(Passes, UnrollConstantLoopsWithinBudgetUnrollsSmallLoopsAndKeepsBigNestsRolled) {
  // 3 trips of one relu unroll into three; 40 x 40 trips of two ops (3200 nodes) would pass the
  // budget: the outer loop stays a loop (its trip count a constant again), its body unrolled.
  const std::string loops = R"IR(
    graph(%x : Tensor):
      %true : bool = prim::Constant[value=1]()
      %trips : int = prim::Constant[value=%TRIPS]()
      %inner : int = prim::Constant[value=%INNER]()
      %r : Tensor = prim::Loop(%trips, %true, %x)
        block0(%i : int, %a : Tensor):
          %b : Tensor = prim::Loop(%inner, %true, %a)
            block0(%j : int, %c : Tensor):
              %d : Tensor = aten::relu(%c)
              %e : Tensor = aten::neg(%d)
              -> (%true, %e)
          -> (%true, %b)
      return (%r))IR";
  auto with = [&](int trips, int inner) {
    std::string ir = loops;
    ir.replace(ir.find("%TRIPS"), 6, std::to_string(trips));
    ir.replace(ir.find("%INNER"), 6, std::to_string(inner));
    return Parse(ir);
  };
  auto small = with(3, 1);
  EXPECT_TRUE(UnrollConstantLoopsWithinBudget(small));
  FileCheck().check_not("prim::Loop")->check_count("aten::relu", 3, true)->run(*small);

  auto big = with(40, 40);
  UnrollConstantLoopsWithinBudget(big);
  FileCheck().check("prim::Constant[value=40]")->check_not("tvmbridge::_rolled_trips")->run(*big);
  int loops_left = 0;
  for (torch::jit::Node* node : big->nodes()) loops_left += node->kind() == c10::prim::Loop;
  EXPECT_EQ(loops_left, 1);  // the outer loop, rolled
}

TEST(Passes, FunctionalizeListAppendsGivesEachReadTheElementsSoFar) {
  auto graph = Parse(R"IR(
    graph(%a : Tensor, %b : Tensor):
      %zero : int = prim::Constant[value=0]()
      %list : Tensor[] = prim::ListConstruct(%a)
      %first : Tensor = aten::cat(%list, %zero)
      %grown : Tensor[] = aten::append(%list, %b)
      %both : Tensor = aten::cat(%list, %zero)
      %r : (Tensor, Tensor) = prim::TupleConstruct(%first, %both)
      return (%r))IR");
  EXPECT_TRUE(FunctionalizeListAppends(*graph));
  FileCheck()
      .check("prim::ListConstruct(%a)")
      ->check("aten::cat")
      ->check("prim::ListConstruct(%a, %b)")
      ->check("aten::cat")
      ->check_not("aten::append")
      ->run(*graph);
}

TEST(Passes, FunctionalizeWritesScattersAWriteThroughASelect) {
  auto graph = Parse(R"IR(
    graph(%x : Tensor):
      %zero : int = prim::Constant[value=0]()
      %two : int = prim::Constant[value=2]()
      %three : int = prim::Constant[value=3]()
      %base : Tensor = aten::mul(%x, %two)
      %row : Tensor = aten::select(%base, %zero, %zero)
      %written : Tensor = aten::mul_(%row, %three)
      %r : Tensor = aten::relu(%base)
      return (%r))IR");
  EXPECT_TRUE(FunctionalizeWrites(*graph));
  FileCheck()
      .check("aten::select")
      ->check("aten::mul(")
      ->check("aten::select_scatter(")
      ->check("aten::relu")
      ->check_not("aten::mul_")
      ->run(*graph);
  EXPECT_FALSE(FunctionalizeWrites(*graph));
}

// diagonal is a view only its schema says is one: the write must stay, for PyTorch to make.
TEST(Passes, FunctionalizeWritesLeavesAWriteThroughAnotherViewInPlace) {
  auto graph = Parse(R"IR(
    graph(%x : Tensor):
      %zero : int = prim::Constant[value=0]()
      %one : int = prim::Constant[value=1]()
      %two : int = prim::Constant[value=2]()
      %base : Tensor = aten::mul(%x, %two)
      %diagonal : Tensor = aten::diagonal(%base, %zero, %zero, %one)
      %written : Tensor = aten::mul_(%diagonal, %two)
      %r : Tensor = aten::relu(%base)
      return (%r))IR");
  EXPECT_FALSE(FunctionalizeWrites(*graph));
  FileCheck().check("aten::diagonal")->check("aten::mul_(")->check("aten::relu(")->run(*graph);
}

TEST(Passes, RemoveLocalMutationMakesAFreshTensorsWritesFunctional) {
  auto graph = Parse(R"IR(
    graph(%x : Tensor):
      %two : int = prim::Constant[value=2]()
      %base : Tensor = aten::mul(%x, %two)
      %written : Tensor = aten::relu_(%base)
      %r : Tensor = aten::sigmoid(%base)
      return (%r))IR");
  EXPECT_TRUE(RemoveLocalMutation(graph));
  FileCheck().check("aten::relu(")->check("aten::sigmoid")->check_not("relu_")->run(*graph);
  EXPECT_FALSE(RemoveLocalMutation(graph));
}

TEST(Passes, WriteBackInputsComputesOnACloneAndCopiesBack) {
  auto graph = Parse(R"IR(
    graph(%self : Tensor, %x : Tensor, %y : Tensor):
      %two : int = prim::Constant[value=2]()
      %written : Tensor = aten::relu_(%x)
      %r : Tensor = aten::mul(%x, %y)
      return (%r))IR");
  EXPECT_EQ(WriteBackInputs(*graph), (std::vector<size_t>{0}));  // y is only read
  FileCheck()
      .check("aten::clone(%x")
      ->check("aten::relu_(")
      ->check("aten::copy_(%x")
      ->check_next("return")
      ->run(*graph);
  const torch::jit::Node* copy_back = graph->return_node()->prev();
  EXPECT_TRUE(IsWriteBack(*copy_back));
  EXPECT_FALSE(IsWriteBack(*graph->return_node()->prev()->prev()));
}

TEST(Passes, FoldReadOnlyAttributesMakesUnwrittenTensorAttributesConstants) {
  torch::jit::Module module("Net");
  module.register_attribute("scale", c10::TensorType::get(), torch::ones({3}));
  module.define(R"(
    def forward(self, x):
        return x * self.scale
  )");
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph()->copy();
  torch::jit::Inline(*graph);
  EXPECT_TRUE(FoldReadOnlyAttributes(graph, module));
  FileCheck().check_not("prim::GetAttr")->check("aten::mul")->run(*graph);
  EXPECT_FALSE(FoldReadOnlyAttributes(graph, module));
}

TEST(Passes, FoldOmittedArgumentsFoldsTheDefaultsAGuardCanCompare) {
  torch::jit::Module module("Net");
  module.define(R"(
    def forward(self, x, mask: Optional[Tensor] = None, scale: float = 2.0,
                shape: Tuple[int, int] = (2, 3)):
        if mask is not None:
            x = x + mask
        return x.reshape(shape) * scale
  )");
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph()->copy();
  const std::vector<OmittedArgument> omitted = FoldOmittedArguments(graph, module, 1);
  ASSERT_EQ(omitted.size(), 3u);
  EXPECT_EQ(omitted[0].index, 1u);
  EXPECT_EQ(omitted[0].name, "mask");
  EXPECT_TRUE(omitted[0].folded && omitted[0].value.isNone());
  EXPECT_TRUE(omitted[1].folded && omitted[1].value.toDouble() == 2.0);
  EXPECT_FALSE(omitted[2].folded);  // a tuple: passed as a value at run time
  FileCheck().check_not("prim::If")->check_not("aten::add")->check("aten::mul")->run(*graph);
  EXPECT_EQ(graph->inputs().size(), 5u);  // the inputs stay; uses of folded ones are gone
  EXPECT_FALSE(graph->inputs()[2]->hasUses());
  EXPECT_TRUE(graph->inputs()[4]->hasUses());
  EXPECT_TRUE(FoldOmittedArguments(graph, module, 4).empty());
  EXPECT_THROW(FoldOmittedArguments(graph, module, 5), c10::ValueError);  // more than declared

  torch::jit::Module required("Required");
  required.define(R"(
    def forward(self, x, y):
        return x + y
  )");
  EXPECT_THROW(FoldOmittedArguments(required.get_method("forward").graph()->copy(), required, 1),
               c10::ValueError);
}

}  // namespace
}  // namespace tvmbridge::passes
