// One test per converter family: a TorchScript IR graph goes through the C++ converters, is
// built by TVM and run by the tvmbridge runtime, and must match libtorch running the same
// graph (values, shapes and dtypes). TVM's compile pipeline is Python, so this binary embeds
// the project's Python (its virtual environment) to build; everything else is C++.
#include <Python.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/ir/irparser.h>
#include <torch/script.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include "compiler/compile.h"
#include "frontend/converter.h"

namespace tvmbridge::frontend {
namespace {

// Starts Python from the virtual environment and registers the build function and the
// target's description as tvm-ffi globals for the tests to call.
class EmbeddedPython : public ::testing::Environment {
 public:
  void SetUp() override {
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    // The venv's interpreter as program name, so its site-packages are found.
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, TVMBRIDGE_PYTHON);
    ASSERT_FALSE(PyStatus_Exception(status));
    status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    ASSERT_FALSE(PyStatus_Exception(status));
    const std::string setup =
        std::string("import sys\nsys.path.insert(0, '") + TVMBRIDGE_PYTHON_PACKAGE + R"(')
import tvm, tvm_ffi
from tvmbridge import build
target = build.host_target()
tvm_ffi.register_global_func("tvmbridge.tests.build", lambda mod: build.build_library(mod, target))
tvm_ffi.register_global_func("tvmbridge.tests.target", lambda: build.target_description(target))
tvm_ffi.register_global_func("tvmbridge.tests.tvm_version", lambda: tvm.__version__)
tvm_ffi.register_global_func("tvmbridge.tests.cpu_features",
                             lambda: build.required_cpu_features(target))
)";
    ASSERT_EQ(PyRun_SimpleString(setup.c_str()), 0) << "see the Python error above";
    // The tests call Python from other threads' point of view only through tvm-ffi, which
    // takes the GIL itself.
    saved_ = PyEval_SaveThread();
  }
  // Python stays up until the process exits: TVM objects it owns outlive the tests.

 private:
  PyThreadState* saved_ = nullptr;
};
const auto* const kPython = ::testing::AddGlobalTestEnvironment(new EmbeddedPython);

std::string CallString(const char* name) {
  return std::string(tvm::ffi::Function::GetGlobalRequired(name)().cast<tvm::ffi::String>());
}

BuildSettings Settings() {
  BuildSettings settings;
  settings.build_library = tvm::ffi::Function::GetGlobalRequired("tvmbridge.tests.build");
  settings.target_json = CallString("tvmbridge.tests.target");
  settings.tvm_version = CallString("tvmbridge.tests.tvm_version");
  auto features = tvm::ffi::Function::GetGlobalRequired("tvmbridge.tests.cpu_features")()
                      .cast<tvm::ffi::Array<tvm::ffi::String>>();
  for (const auto& feature : features) settings.cpu_features.emplace_back(feature);
  return settings;
}

std::vector<at::Tensor> AsTensors(const c10::IValue& value) {
  if (value.isTensor()) return {value.toTensor()};
  std::vector<at::Tensor> tensors;
  for (const c10::IValue& element : value.toTupleRef().elements()) {
    tensors.push_back(element.toTensor());
  }
  return tensors;
}

// Converts `graph` (first input %self, then one tensor like each of `inputs`) and builds it
// into a runtime module.
c10::intrusive_ptr<TVMModule> BuildGraph(const torch::jit::Graph& graph,
                                         const std::vector<at::Tensor>& inputs) {
  std::vector<TensorSpec> specs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    specs.push_back(
        {"input_" + std::to_string(i), inputs[i].sizes().vec(), inputs[i].scalar_type()});
  }
  ConversionResult converted = ConvertGraph(graph, specs, {}, ConversionOptions{});
  ArtifactMetadata metadata;
  metadata.inputs = converted.inputs;
  metadata.outputs = converted.outputs;
  metadata.output_is_tuple = converted.output_is_tuple;
  return BuildModule(converted.ir_module, std::move(metadata), Settings());
}

std::shared_ptr<torch::jit::Graph> ParseGraph(const std::string& ir) {
  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, graph.get());
  return graph;
}

// Converts the graph of `ir` (first input %self, then one tensor per entry of `inputs`),
// builds and runs it with TVM, runs it with libtorch, and compares every output.
void ExpectTvmMatchesTorchScript(const std::string& ir, const std::vector<at::Tensor>& inputs,
                                 double tolerance = 1e-5) {
  std::shared_ptr<torch::jit::Graph> graph = ParseGraph(ir);
  std::vector<at::Tensor> actual = BuildGraph(*graph, inputs)->Run(inputs);

  torch::jit::GraphFunction reference("reference", graph, nullptr);
  torch::jit::Stack stack{c10::IValue(at::zeros({}))};
  for (const at::Tensor& input : inputs) stack.emplace_back(input);
  reference.run(stack);
  std::vector<at::Tensor> expected = AsTensors(stack.at(0));

  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    SCOPED_TRACE("output " + std::to_string(i));
    EXPECT_EQ(actual[i].scalar_type(), expected[i].scalar_type());
    ASSERT_EQ(actual[i].sizes(), expected[i].sizes());
    if (c10::isFloatingType(expected[i].scalar_type())) {
      EXPECT_TRUE(torch::allclose(actual[i], expected[i], tolerance, tolerance))
          << "max abs diff " << (actual[i] - expected[i]).abs().max().item<double>();
    } else {
      EXPECT_TRUE(torch::equal(actual[i], expected[i]));
    }
  }
}

at::Tensor Random(std::vector<int64_t> shape, int64_t seed = 0) {
  torch::manual_seed(seed);
  return torch::randn(shape);
}

TEST(ConverterFamily, ElementwiseWithTypePromotion) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor, %i : Tensor):
      %one : int = prim::Constant[value=1]()
      %three : int = prim::Constant[value=3]()
      %half : float = prim::Constant[value=0.5]()
      %scaled : Tensor = aten::mul(%i, %half)
      %sum : Tensor = aten::add(%x, %scaled, %one)
      %remainder : Tensor = aten::remainder(%i, %three)
      %lerped : Tensor = aten::lerp(%x, %sum, %half)
      %out : (Tensor, Tensor, Tensor) = prim::TupleConstruct(%sum, %remainder, %lerped)
      return (%out))IR",
                              {Random({3, 5}), torch::arange(-7, 8).reshape({3, 5})});
}

TEST(ConverterFamily, UnaryMath) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %a : Tensor = aten::abs(%x)
      %r : Tensor = aten::sqrt(%a)
      %l : Tensor = aten::log1p(%a)
      %s : Tensor = aten::sinh(%x)
      %t : Tensor = aten::trunc(%x)
      %out : (Tensor, Tensor, Tensor, Tensor) = prim::TupleConstruct(%r, %l, %s, %t)
      return (%out))IR",
                              {Random({4, 6}) * 3});
}

TEST(ConverterFamily, Activations) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %alpha : float = prim::Constant[value=0.7]()
      %one : int = prim::Constant[value=1]()
      %beta : float = prim::Constant[value=2.]()
      %threshold : float = prim::Constant[value=3.]()
      %e : Tensor = aten::elu(%x, %alpha, %one, %one)
      %p : Tensor = aten::softplus(%x, %beta, %threshold)
      %h : Tensor = aten::hardswish(%x)
      %out : (Tensor, Tensor, Tensor) = prim::TupleConstruct(%e, %p, %h)
      return (%out))IR",
                              {Random({4, 6}) * 3});
}

TEST(ConverterFamily, Reductions) {
  ExpectTvmMatchesTorchScript(
      R"IR(
    graph(%self : Tensor, %x : Tensor, %i : Tensor):
      %none : NoneType = prim::Constant()
      %true : bool = prim::Constant[value=1]()
      %false : bool = prim::Constant[value=0]()
      %one : int = prim::Constant[value=1]()
      %dims : int[] = prim::ListConstruct(%one)
      %correction : float = prim::Constant[value=0.]()
      %std : Tensor = aten::std(%x, %dims, %correction, %true)
      %lse : Tensor = aten::logsumexp(%x, %dims, %false)
      %amax : Tensor = aten::amax(%x, %dims, %false)
      %cumsum : Tensor = aten::cumsum(%i, %one, %none)
      %prod : Tensor = aten::prod(%i, %none)
      %out : (Tensor, Tensor, Tensor, Tensor, Tensor) = prim::TupleConstruct(%std, %lse, %amax, %cumsum, %prod)
      return (%out))IR",
      {Random({3, 5}) * 4, torch::arange(1, 7).reshape({2, 3}).to(at::kInt)});
}

TEST(ConverterFamily, Layout) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %zero : int = prim::Constant[value=0]()
      %one : int = prim::Constant[value=1]()
      %two : int = prim::Constant[value=2]()
      %shifts : int[] = prim::ListConstruct(%two)
      %dims : int[] = prim::ListConstruct(%one)
      %rolled : Tensor = aten::roll(%x, %shifts, %dims)
      %flipped : Tensor = aten::flip(%x, %dims)
      %repeats : int[] = prim::ListConstruct(%two, %one, %two)
      %tiled : Tensor = aten::repeat(%x, %repeats)
      %mode : str = prim::Constant[value="reflect"]()
      %none : NoneType = prim::Constant()
      %pads : int[] = prim::ListConstruct(%two, %one)
      %batched : Tensor = aten::unsqueeze(%x, %zero)
      %padded : Tensor = aten::pad(%batched, %pads, %mode, %none)
      %pair : Tensor[] = prim::ListConstruct(%x, %rolled)
      %stacked : Tensor = aten::stack(%pair, %one)
      %out : (Tensor, Tensor, Tensor, Tensor, Tensor) = prim::TupleConstruct(%rolled, %flipped, %tiled, %padded, %stacked)
      return (%out))IR",
                              {Random({3, 5})});
}

TEST(ConverterFamily, Indexing) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor, %index : Tensor):
      %one : int = prim::Constant[value=1]()
      %false : bool = prim::Constant[value=0]()
      %true : bool = prim::Constant[value=1]()
      %scattered : Tensor = aten::scatter_add(%x, %one, %index, %x)
      %gathered : Tensor = aten::gather(%x, %one, %index, %false)
      %values : Tensor, %order : Tensor = aten::sort(%x, %one, %true)
      %out : (Tensor, Tensor, Tensor, Tensor) = prim::TupleConstruct(%scattered, %gathered, %values, %order)
      return (%out))IR",
                              {Random({3, 5}), torch::randint(0, 5, {3, 5})});
}

// Indices a caller sends are checked inside the compiled code: out of range raises
// c10::IndexError (what PyTorch raises), never reads outside the table, and the module keeps
// working; negative indices wrap where PyTorch wraps them (take).
TEST(ConverterFamily, IndicesOutOfRangeRaiseIndexError) {
  std::shared_ptr<torch::jit::Graph> graph = ParseGraph(R"IR(
    graph(%self : Tensor, %table : Tensor, %ids : Tensor):
      %no_padding : int = prim::Constant[value=-1]()
      %false : bool = prim::Constant[value=0]()
      %rows : Tensor = aten::embedding(%table, %ids, %no_padding, %false, %false)
      %flat : Tensor = aten::take(%table, %ids)
      %out : (Tensor, Tensor) = prim::TupleConstruct(%rows, %flat)
      return (%out))IR");
  at::Tensor table = Random({100, 4});
  at::Tensor ids = torch::tensor({3, 99, 0}, torch::kLong);
  c10::intrusive_ptr<TVMModule> module = BuildGraph(*graph, {table, ids});
  auto expect_matches = [&] {
    std::vector<at::Tensor> outputs = module->Run({table, ids});
    EXPECT_TRUE(torch::equal(outputs[0], table.index_select(0, ids)));
    EXPECT_TRUE(torch::equal(outputs[1], table.take(ids)));
  };
  expect_matches();
  for (int64_t bad : {int64_t{100}, int64_t{100000000}, int64_t{-5}}) {
    SCOPED_TRACE("index " + std::to_string(bad));
    at::Tensor bad_ids = torch::tensor(std::vector<int64_t>{3, bad, 0});
    try {
      module->Run({table, bad_ids});
      ADD_FAILURE() << "no error";
    } catch (const c10::IndexError& error) {
      std::string message = error.what_without_backtrace();
      EXPECT_NE(message.find("aten::embedding: index " + std::to_string(bad) + " is out of range"),
                std::string::npos)
          << message;
      EXPECT_NE(message.find("expected 0 <= index < 100"), std::string::npos) << message;
    }
  }
  expect_matches();  // the module still works
}

TEST(ConverterFamily, ConvolutionAndNormalisation) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor, %weight : Tensor, %gamma : Tensor):
      %none : NoneType = prim::Constant()
      %one : int = prim::Constant[value=1]()
      %two : int = prim::Constant[value=2]()
      %eps : float = prim::Constant[value=1e-05]()
      %false : bool = prim::Constant[value=0]()
      %ones : int[] = prim::ListConstruct(%one, %one)
      %conv : Tensor = aten::conv2d(%x, %weight, %none, %ones, %ones, %ones, %one)
      %normed : Tensor = aten::group_norm(%conv, %two, %gamma, %gamma, %eps, %false)
      %size : int[] = prim::ListConstruct(%two, %two)
      %pooled : Tensor, %indices : Tensor = aten::adaptive_max_pool2d(%normed, %size)
      return (%pooled))IR",
                              {Random({1, 3, 8, 8}), Random({4, 3, 3, 3}, 1), Random({4}, 2)});
}

TEST(ConverterFamily, Interpolation) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %none : NoneType = prim::Constant()
      %false : bool = prim::Constant[value=0]()
      %h : int = prim::Constant[value=7]()
      %w : int = prim::Constant[value=9]()
      %size : int[] = prim::ListConstruct(%h, %w)
      %bilinear : Tensor = aten::upsample_bilinear2d(%x, %size, %false, %none, %none)
      %nearest : Tensor = aten::upsample_nearest2d(%x, %size, %none, %none)
      %two : int = prim::Constant[value=2]()
      %shuffled : Tensor = aten::pixel_shuffle(%x, %two)
      %out : (Tensor, Tensor, Tensor) = prim::TupleConstruct(%bilinear, %nearest, %shuffled)
      return (%out))IR",
                              {Random({1, 4, 3, 5})});
}

TEST(ConverterFamily, RecurrentLayers) {
  // A one-layer GRU over 4 steps, batch 2; weights as graph inputs.
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor, %h : Tensor, %w_ih : Tensor, %w_hh : Tensor, %b_ih : Tensor, %b_hh : Tensor):
      %true : bool = prim::Constant[value=1]()
      %false : bool = prim::Constant[value=0]()
      %one : int = prim::Constant[value=1]()
      %dropout : float = prim::Constant[value=0.]()
      %params : Tensor[] = prim::ListConstruct(%w_ih, %w_hh, %b_ih, %b_hh)
      %out : Tensor, %last : Tensor = aten::gru(%x, %h, %params, %true, %one, %dropout, %false, %false, %false)
      %result : (Tensor, Tensor) = prim::TupleConstruct(%out, %last)
      return (%result))IR",
                              {Random({4, 2, 5}), Random({1, 2, 6}, 1), Random({18, 5}, 2),
                               Random({18, 6}, 3), Random({18}, 4), Random({18}, 5)});
}

TEST(ConverterFamily, Creation) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %none : NoneType = prim::Constant()
      %seven : int = prim::Constant[value=7]()
      %fill : float = prim::Constant[value=2.5]()
      %range : Tensor = aten::arange(%seven, %none, %none, %none, %none)
      %scaled : Tensor = aten::mul(%x, %range)
      %filled : Tensor = aten::full_like(%x, %fill, %none, %none, %none, %none, %none)
      %ones : Tensor = aten::ones_like(%x, %none, %none, %none, %none, %none)
      %out : (Tensor, Tensor, Tensor) = prim::TupleConstruct(%scaled, %filled, %ones)
      return (%out))IR",
                              {Random({3, 7})});
}

TEST(ConverterFamily, ShapesAndViews) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %zero : int = prim::Constant[value=0]()
      %one : int = prim::Constant[value=1]()
      %minus_one : int = prim::Constant[value=-1]()
      %n : int = aten::size(%x, %zero)
      %shape : int[] = prim::ListConstruct(%n, %minus_one)
      %flat : Tensor = aten::view(%x, %shape)
      %swapped : Tensor = aten::transpose(%x, %zero, %one)
      %axes : int[] = prim::ListConstruct(%one, %zero)
      %permuted : Tensor = aten::permute(%x, %axes)
      %pair : Tensor[] = prim::ListConstruct(%swapped, %permuted)
      %joined : Tensor = aten::cat(%pair, %zero)
      %out : (Tensor, Tensor) = prim::TupleConstruct(%flat, %joined)
      return (%out))IR",
                              {Random({3, 4})});
}

TEST(ConverterFamily, ScalarsFromStaticShapes) {
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor):
      %n : int = aten::numel(%x)
      %shape : Tensor = aten::_shape_as_tensor(%x)
      %scaled : Tensor = aten::mul(%x, %n)
      %out : (Tensor, Tensor) = prim::TupleConstruct(%scaled, %shape)
      return (%out))IR",
                              {Random({3, 5})});
}

TEST(ConverterFamily, Quantized) {
  // quint8 (ScalarType 13) tensors through quantized:: ops and aten ops that keep their
  // quantization; each op's result lands on its grid exactly as in PyTorch here (no near-ties
  // in these values).
  ExpectTvmMatchesTorchScript(R"IR(
    graph(%self : Tensor, %x : Tensor, %y : Tensor):
      %quint8 : int = prim::Constant[value=13]()
      %scale : float = prim::Constant[value=0.05]()
      %zero_point : int = prim::Constant[value=64]()
      %out_scale : float = prim::Constant[value=0.1]()
      %out_zero_point : int = prim::Constant[value=30]()
      %slope : float = prim::Constant[value=0.25]()
      %false : bool = prim::Constant[value=0]()
      %one : int = prim::Constant[value=1]()
      %qx : Tensor = aten::quantize_per_tensor(%x, %scale, %zero_point, %quint8)
      %qy : Tensor = aten::quantize_per_tensor(%y, %scale, %zero_point, %quint8)
      %sum : Tensor = quantized::add(%qx, %qy, %out_scale, %out_zero_point)
      %product : Tensor = quantized::mul(%qx, %qy, %scale, %zero_point)
      %clipped : Tensor = quantized::relu6(%sum, %false)
      %swished : Tensor = quantized::hardswish(%product, %scale, %zero_point)
      %leaky : Tensor = quantized::leaky_relu(%qx, %slope, %false, %scale, %zero_point)
      %rectified : Tensor = aten::relu(%leaky)
      %parts : Tensor[] = prim::ListConstruct(%clipped, %swished, %rectified)
      %joined : Tensor = quantized::cat(%parts, %one, %out_scale, %out_zero_point)
      %out : Tensor = aten::dequantize(%joined)
      return (%out))IR",
                              {Random({2, 3, 4}), Random({2, 3, 4}, 1)});
}

}  // namespace
}  // namespace tvmbridge::frontend
