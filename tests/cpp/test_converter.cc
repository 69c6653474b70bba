// Converter units: TorchScript graphs in, Relax out (structure, types and errors). Numerics
// against PyTorch are checked end to end in tests/python, where TVM's compile pipeline lives.
#include <dlfcn.h>

#include <string>

#include <gtest/gtest.h>
#include <torch/csrc/jit/ir/irparser.h>
#include <torch/csrc/jit/testing/file_check.h>
#include <torch/script.h>
#include <tvm/ffi/function.h>

#include "frontend/converter.h"
#include "passes/passes.h"
#include "passes/pipeline.h"

namespace tvmbridge::frontend {
namespace {

using passes::InputWrites;
using passes::IsWriteBack;
using passes::PreparedGraph;
using passes::PrepareForConversion;

// The frontend builds Relax through TVM's compiler library, which registers the globals.
class TvmCompilerEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    ASSERT_NE(dlopen(TVM_COMPILER_LIBRARY, RTLD_NOW | RTLD_GLOBAL), nullptr) << dlerror();
  }
};
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new TvmCompilerEnvironment);

std::string Script(const tvm::ffi::ObjectRef& ir_module) {
  static const auto print = tvm::ffi::Function::GetGlobalRequired("node.TVMScriptPrinterScript");
  return std::string(print(ir_module, tvm::ffi::Any()).cast<tvm::ffi::String>());
}

std::shared_ptr<torch::jit::Graph> ParseGraph(const std::string& ir) {
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, graph.get());
  return graph;
}

ConversionResult Convert(const torch::jit::Graph& graph, std::vector<TensorSpec> inputs,
                         bool keep_params = false) {
  ConversionOptions options;
  options.keep_params_as_input = keep_params;
  return ConvertGraph(graph, inputs, {}, options);
}

TEST(Converter, ElementwiseGraphHasTypedOutput) {
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %one : int = prim::Constant[value=1]()
      %y : Tensor = aten::relu(%x)
      %z : Tensor = aten::add(%y, %x, %one)
      return (%z))IR");
  ConversionResult result = Convert(*graph, {{"x", {2, 3}, c10::ScalarType::Float}});
  ASSERT_EQ(result.outputs.size(), 1u);
  EXPECT_EQ(result.outputs[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(result.outputs[0].dtype, c10::ScalarType::Float);
  EXPECT_FALSE(result.output_is_tuple);
  std::string script = Script(result.ir_module);
  EXPECT_NE(script.find("R.nn.relu"), std::string::npos) << script;
  EXPECT_NE(script.find("R.add"), std::string::npos) << script;
}

TEST(Converter, ShapeArithmeticIsFoldedByTorchScript) {
  // view(x, [x.size(0) * 2, -1]) needs aten::size, aten::mul on ints and -1 inference.
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %zero : int = prim::Constant[value=0]()
      %two : int = prim::Constant[value=2]()
      %minus_one : int = prim::Constant[value=-1]()
      %n : int = aten::size(%x, %zero)
      %rows : int = aten::mul(%n, %two)
      %shape : int[] = prim::ListConstruct(%rows, %minus_one)
      %y : Tensor = aten::view(%x, %shape)
      return (%y))IR");
  ConversionResult result = Convert(*graph, {{"x", {4, 6}, c10::ScalarType::Float}});
  EXPECT_EQ(result.outputs[0].shape, (std::vector<int64_t>{8, 3}));
}

TEST(Converter, ConstantConditionTakesOneBranch) {
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %four : int = prim::Constant[value=4]()
      %rank : int = aten::dim(%x)
      %is_4d : bool = aten::eq(%rank, %four)
      %y : Tensor = prim::If(%is_4d)
        block0():
          %a : Tensor = aten::sigmoid(%x)
          -> (%a)
        block1():
          %b : Tensor = aten::tanh(%x)
          -> (%b)
      return (%y))IR");
  std::string script =
      Script(Convert(*graph, {{"x", {1, 2, 3, 4}, c10::ScalarType::Float}}).ir_module);
  EXPECT_NE(script.find("R.sigmoid"), std::string::npos) << script;
  EXPECT_EQ(script.find("R.tanh"), std::string::npos) << script;
}

TEST(Converter, TupleOutputAndMultipleInputs) {
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor, %y : Tensor):
      %p : Tensor = aten::matmul(%x, %y)
      %t : (Tensor, Tensor) = prim::TupleConstruct(%p, %x)
      return (%t))IR");
  ConversionResult result = Convert(
      *graph, {{"x", {2, 3}, c10::ScalarType::Float}, {"y", {3, 5}, c10::ScalarType::Float}});
  EXPECT_TRUE(result.output_is_tuple);
  ASSERT_EQ(result.outputs.size(), 2u);
  EXPECT_EQ(result.outputs[0].shape, (std::vector<int64_t>{2, 5}));
  EXPECT_EQ(result.outputs[1].shape, (std::vector<int64_t>{2, 3}));
}

TEST(Converter, UnsupportedOpsAreListedTogether) {
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %d : int = prim::Constant[value=-1]()
      %v : Tensor, %i : Tensor = aten::cummax(%x, %d)
      %s : Tensor = aten::cummax_me_not(%v)
      return (%s))IR");
  EXPECT_EQ(UnsupportedOps(*graph),
            (std::vector<std::string>{"aten::cummax", "aten::cummax_me_not"}));
  try {
    Convert(*graph, {{"x", {2, 8}, c10::ScalarType::Float}});
    FAIL() << "expected a ConversionError";
  } catch (const ConversionError& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("aten::cummax"), std::string::npos) << message;
    EXPECT_NE(message.find("aten::cummax_me_not"), std::string::npos) << message;
  }
}

TEST(Converter, ErrorsNameTheNodeAndTheReason) {
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %p : float = prim::Constant[value=0.5]()
      %train : bool = prim::Constant[value=1]()
      %y : Tensor = aten::dropout(%x, %p, %train)
      return (%y))IR");
  try {
    Convert(*graph, {{"x", {2, 8}, c10::ScalarType::Float}});
    FAIL() << "expected a ConversionError";
  } catch (const ConversionError& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("aten::dropout"), std::string::npos) << message;
    EXPECT_NE(message.find("model.eval()"), std::string::npos) << message;
  }
}

TEST(Converter, InputCountMismatchIsReported) {
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      return (%x))IR");
  EXPECT_THROW(Convert(*graph, {}), c10::ValueError);
}

TEST(Converter, WeightsBecomeNamedParams) {
  torch::jit::Module module("Net");
  module.register_attribute("training", c10::BoolType::get(), true);
  module.register_parameter("weight", torch::randn({4, 3, 3, 3}), false);
  module.register_parameter("bias", torch::randn({4}), false);
  module.define(R"(
    def forward(self, x):
        return torch.conv2d(x, self.weight, self.bias, [1, 1], [1, 1])
  )");
  PreparedGraph prepared = PrepareForConversion(module);
  ConversionOptions options;
  options.keep_params_as_input = true;
  ConversionResult result =
      ConvertGraph(*prepared.graph, {{"x", {1, 3, 8, 8}, c10::ScalarType::Float}},
                   prepared.weight_names, options);
  EXPECT_EQ(result.outputs[0].shape, (std::vector<int64_t>{1, 4, 8, 8}));
  ASSERT_EQ(result.param_names.size(), 2u);
  std::vector<std::string> names = result.param_names;
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"bias", "weight"}));
  EXPECT_NE(Script(result.ir_module).find("R.nn.conv2d"), std::string::npos);
}

TEST(GraphPrep, InPlaceOpOnAnInputIsRefused) {
  torch::jit::Module module("Net");
  module.register_attribute("training", c10::BoolType::get(), true);
  module.define(R"(
    def forward(self, x):
        x.relu_()
        return x * 2
  )");
  try {
    PrepareForConversion(module);
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("modifies a model input"), std::string::npos)
        << error.what();
  }
}

// The compile path keeps PyTorch's semantics instead: the graph computes on a clone and
// copies the result into the caller's tensor at the end; the write itself becomes functional.
TEST(GraphPrep, WritesIntoAnInputAreCopiedBackAtTheEnd) {
  torch::jit::Module module("Net");
  module.register_attribute("training", c10::BoolType::get(), true);
  module.define(R"(
    def forward(self, x, y):
        x.relu_()
        x[0].fill_(1.0)
        return x.add_(y), y * 2
  )");
  PreparedGraph prepared = PrepareForConversion(module, true, InputWrites::kWriteBack);
  EXPECT_EQ(prepared.written_back_inputs, (std::vector<size_t>{0}));
  const torch::jit::Graph& graph = *prepared.graph;
  torch::jit::testing::FileCheck()
      .check("aten::clone(%x")
      ->check("aten::relu(")
      ->check("aten::select_scatter(")
      ->check("aten::add(")
      ->check("aten::copy_(%x")
      ->check_next("prim::TupleConstruct")
      ->check_next("return")
      ->run(graph);
  torch::jit::testing::FileCheck().check_not("relu_")->check_not("fill_")->run(graph);
  // `return x.add_(y)` is the caller's tensor, as in PyTorch; `y` is only read.
  const torch::jit::Node* results = graph.return_node()->input(0)->node();
  ASSERT_EQ(results->kind(), c10::prim::TupleConstruct);
  const torch::jit::Node* copy_back = results->input(0)->node();
  EXPECT_EQ(copy_back->kind(), c10::aten::copy_);
  EXPECT_TRUE(IsWriteBack(*copy_back));
  EXPECT_EQ(copy_back->input(0), graph.inputs()[1]);
}

// A write that changes the input's shape cannot be copied back: PyTorch runs it, as before.
TEST(GraphPrep, ShapeChangingWritesIntoAnInputStayInPlace) {
  torch::jit::Module module("Net");
  module.register_attribute("training", c10::BoolType::get(), true);
  module.define(R"(
    def forward(self, x):
        x.unsqueeze_(0)
        return x.relu_()
  )");
  PreparedGraph prepared = PrepareForConversion(module, true, InputWrites::kWriteBack);
  EXPECT_TRUE(prepared.written_back_inputs.empty());
  torch::jit::testing::FileCheck()
      .check("aten::unsqueeze_(%x")
      ->check("aten::relu_(")
      ->check_not("aten::copy_")
      ->run(*prepared.graph);
}

TEST(Converter, DataDependentBranchBecomesRelaxIf) {
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %none : NoneType = prim::Constant()
      %zero : int = prim::Constant[value=0]()
      %s : Tensor = aten::sum(%x, %none)
      %positive : Tensor = aten::gt(%s, %zero)
      %cond : bool = aten::Bool(%positive)
      %y : Tensor = prim::If(%cond)
        block0():
          %a : Tensor = aten::relu(%x)
          -> (%a)
        block1():
          %b : Tensor = aten::neg(%x)
          -> (%b)
      return (%y))IR");
  std::string script = Script(Convert(*graph, {{"x", {4}, c10::ScalarType::Float}}).ir_module);
  EXPECT_NE(script.find("if "), std::string::npos) << script;
  EXPECT_NE(script.find("R.nn.relu"), std::string::npos) << script;
  EXPECT_NE(script.find("R.negative"), std::string::npos) << script;
}

TEST(Converter, StaticLoopIsUnrolled) {
  // for _ in range(x.size(0)): y = relu(y) + 1
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %zero : int = prim::Constant[value=0]()
      %one : int = prim::Constant[value=1]()
      %true : bool = prim::Constant[value=1]()
      %n : int = aten::size(%x, %zero)
      %y : Tensor = prim::Loop(%n, %true, %x)
        block0(%i : int, %acc : Tensor):
          %r : Tensor = aten::relu(%acc)
          %next : Tensor = aten::add(%r, %one, %one)
          -> (%true, %next)
      return (%y))IR");
  std::string script = Script(Convert(*graph, {{"x", {3, 2}, c10::ScalarType::Float}}).ir_module);
  size_t relus = 0;
  for (size_t at = script.find("R.nn.relu"); at != std::string::npos;
       at = script.find("R.nn.relu", at + 1)) {
    ++relus;
  }
  EXPECT_EQ(relus, 3u) << script;
}

TEST(Converter, DataDependentLoopIsRefusedWithAReason) {
  auto graph = ParseGraph(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %big : int = prim::Constant[value=100]()
      %zero : int = prim::Constant[value=0]()
      %none : NoneType = prim::Constant()
      %start : Tensor = aten::sum(%x, %none)
      %go : Tensor = aten::gt(%start, %zero)
      %cond : bool = aten::Bool(%go)
      %y : Tensor = prim::Loop(%big, %cond, %x)
        block0(%i : int, %acc : Tensor):
          %r : Tensor = aten::neg(%acc)
          -> (%cond, %r)
      return (%y))IR");
  try {
    Convert(*graph, {{"x", {3}, c10::ScalarType::Float}});
    FAIL() << "expected a ConversionError";
  } catch (const ConversionError& error) {
    EXPECT_NE(std::string(error.what()).find("depends on tensor values"), std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace tvmbridge::frontend

namespace tvmbridge::frontend {

TEST(ConverterTable, ASecondRegistrationOfAKindFailsLoudly) {
  ConverterTable table;
  Converter identity = [](ConversionContext& ctx, const torch::jit::Node& node) {
    return ctx.Get(node.input(0));
  };
  table.Register("aten::relu", identity);
  EXPECT_EQ(table.count("aten::relu"), 1u);
  try {
    RegisterWithInplace(table, "aten::relu", identity);
    FAIL() << "expected an error";
  } catch (const c10::Error& error) {
    EXPECT_NE(std::string(error.what()).find("two converters are registered for aten::relu"),
              std::string::npos)
        << error.what();
  }
  // The shipped table registers each kind once (building it would have thrown otherwise).
  EXPECT_GT(Converters().count("aten::conv2d"), 0u);
}

}  // namespace tvmbridge::frontend
