#include "compiler/embed.h"

#include <sstream>

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include "tvmbridge/tvm_module.h"

namespace tvmbridge {

std::string EmbedAsTorchScript(const ArtifactMetadata& metadata, const at::Tensor& library) {
  c10::IValue tvm_module(c10::make_intrusive<TVMModule>(metadata.ToJson(), library));
  torch::jit::Module module(c10::QualifiedName("__torch__.tvmbridge.CompiledModule"));
  module.register_attribute("training", c10::BoolType::get(), false);
  module.register_attribute("tvm_module", tvm_module.type(), tvm_module);

  auto graph = std::make_shared<torch::jit::Graph>();
  torch::jit::Value* self = graph->addInput("self")->setType(module.type());
  std::vector<torch::jit::Value*> inputs;
  for (const TensorSpec& spec : metadata.inputs) {
    inputs.push_back(graph->addInput(spec.name)->setType(c10::TensorType::get()));
  }
  torch::jit::Value* holder = graph->insertGetAttr(self, "tvm_module");
  torch::jit::Value* input_list =
      graph->insertNode(graph->createList(c10::TensorType::get(), inputs))->output();
  torch::jit::Value* output_list =
      graph->insert(c10::Symbol::fromQualString("tvmbridge::run"), {holder, input_list});
  torch::jit::Node* unpack =
      graph->insertNode(graph->createListUnpack(output_list, metadata.outputs.size()));
  if (metadata.output_is_tuple) {
    graph->registerOutput(graph->insertNode(graph->createTuple(unpack->outputs()))->output());
  } else {
    graph->registerOutput(unpack->output(0));
  }

  auto* forward = module._ivalue()->compilation_unit()->create_function(
      c10::QualifiedName(*module.type()->name(), "forward"), graph);
  module.type()->addMethod(forward);

  std::ostringstream archive;
  module.save(archive);
  return archive.str();
}

}  // namespace tvmbridge
