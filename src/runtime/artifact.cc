#include "tvmbridge/artifact.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include <c10/util/Exception.h>
#include <tvm/ffi/extra/json.h>

#include "runtime/cpu_features.h"
#include "runtime/elf_check.h"
#include "runtime/sha256.h"

namespace tvmbridge {
namespace json = tvm::ffi::json;

namespace {

const std::pair<c10::ScalarType, const char*> kDtypeNames[] = {
    {c10::ScalarType::Float, "float32"}, {c10::ScalarType::Double, "float64"},
    {c10::ScalarType::Half, "float16"},  {c10::ScalarType::BFloat16, "bfloat16"},
    {c10::ScalarType::Long, "int64"},    {c10::ScalarType::Int, "int32"},
    {c10::ScalarType::Short, "int16"},   {c10::ScalarType::Char, "int8"},
    {c10::ScalarType::Byte, "uint8"},    {c10::ScalarType::Bool, "bool"},
};

// A dynamic extent is written as its symbol, a static one as its number.
json::Object SpecToJson(const TensorSpec& spec) {
  tvm::ffi::Array<tvm::ffi::Any> shape;
  for (size_t i = 0; i < spec.shape.size(); ++i) {
    if (spec.shape[i] == kDynamicExtent) {
      shape.push_back(tvm::ffi::String(spec.dim_symbols.at(i)));
    } else {
      shape.push_back(spec.shape[i]);
    }
  }
  json::Object object{{"name", tvm::ffi::String(spec.name)},
                      {"shape", shape},
                      {"dtype", tvm::ffi::String(DtypeName(spec.dtype))}};
  if (!spec.dim_ranges.empty()) {
    json::Array ranges;
    for (const ExtentRange& range : spec.dim_ranges) {
      ranges.push_back(json::Array{range.min, range.opt, range.max});
    }
    object.Set(tvm::ffi::String("ranges"), ranges);
  }
  return object;
}

// Reads one key of a JSON object as T, with an error that names the key when absent or wrong.
template <typename T>
T Field(const json::Object& object, const char* key, const char* where) {
  auto it = object.find(tvm::ffi::String(key));
  TORCH_CHECK(it != object.end(), "tvmbridge: corrupted artifact metadata: ", where, " has no '",
              key, "'");
  auto value = (*it).second.try_cast<T>();
  TORCH_CHECK(value.has_value(), "tvmbridge: corrupted artifact metadata: ", where, ".", key,
              " has the wrong type");
  return *value;
}

TensorSpec SpecFromJson(const tvm::ffi::Any& value, const char* where) {
  auto object = value.try_cast<json::Object>();
  TORCH_CHECK(object.has_value(), "tvmbridge: corrupted artifact metadata: ", where,
              " is not an object");
  TensorSpec spec;
  spec.name = std::string(Field<tvm::ffi::String>(*object, "name", where));
  json::Array dims = Field<json::Array>(*object, "shape", where);
  std::vector<std::string> symbols;
  for (const tvm::ffi::Any& dim : dims) {
    if (auto symbol = dim.try_cast<tvm::ffi::String>()) {
      TORCH_CHECK(!symbol->empty(), "tvmbridge: corrupted artifact metadata: ", where,
                  ".shape has an empty symbol");
      spec.shape.push_back(kDynamicExtent);
      symbols.emplace_back(*symbol);
      continue;
    }
    auto extent = dim.try_cast<int64_t>();
    TORCH_CHECK(extent.has_value() && *extent >= 0,
                "tvmbridge: corrupted artifact metadata: ", where, ".shape has a bad dimension");
    spec.shape.push_back(*extent);
    symbols.emplace_back();
  }
  bool dynamic = std::any_of(symbols.begin(), symbols.end(),
                             [](const std::string& symbol) { return !symbol.empty(); });
  if (dynamic) spec.dim_symbols = std::move(symbols);
  spec.dtype = DtypeFromName(std::string(Field<tvm::ffi::String>(*object, "dtype", where)));
  if (object->count(tvm::ffi::String("ranges")) != 0) {
    json::Array ranges = Field<json::Array>(*object, "ranges", where);
    TORCH_CHECK(ranges.size() == spec.shape.size(),
                "tvmbridge: corrupted artifact metadata: ", where, ".ranges has ", ranges.size(),
                " entries for ", spec.shape.size(), " dims");
    for (const tvm::ffi::Any& entry : ranges) {
      auto bounds = entry.try_cast<json::Array>();
      TORCH_CHECK(bounds.has_value() && bounds->size() == 3,
                  "tvmbridge: corrupted artifact "
                  "metadata: ",
                  where, ".ranges holds something other than [min, opt, max]");
      ExtentRange range{(*bounds)[0].cast<int64_t>(), (*bounds)[1].cast<int64_t>(),
                        (*bounds)[2].cast<int64_t>()};
      TORCH_CHECK(0 <= range.min && range.min <= range.opt && range.opt <= range.max,
                  "tvmbridge: corrupted artifact metadata: ", where, ".ranges has a bad range");
      spec.dim_ranges.push_back(range);
    }
  }
  return spec;
}

std::vector<TensorSpec> SpecsFromJson(const json::Object& object, const char* key) {
  std::vector<TensorSpec> specs;
  for (const tvm::ffi::Any& item : Field<json::Array>(object, key, "metadata")) {
    specs.push_back(SpecFromJson(item, key));
  }
  return specs;
}

}  // namespace

std::string DtypeName(c10::ScalarType dtype) {
  for (const auto& [type, name] : kDtypeNames) {
    if (type == dtype) return name;
  }
  TORCH_CHECK(false, "tvmbridge: dtype ", c10::toString(dtype), " is not supported");
}

c10::ScalarType DtypeFromName(const std::string& name) {
  for (const auto& [type, known] : kDtypeNames) {
    if (name == known) return type;
  }
  TORCH_CHECK(false, "tvmbridge: unknown dtype '", name, "'");
}

std::string ShapeString(const std::vector<int64_t>& shape,
                        const std::vector<std::string>& dim_symbols) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out << (i ? ", " : "");
    if (shape[i] != kDynamicExtent) {
      out << shape[i];
    } else {
      out << (i < dim_symbols.size() ? dim_symbols[i] : "?");
    }
  }
  out << "]";
  return out.str();
}

std::vector<int64_t> ShapeAt(const TensorSpec& spec, int64_t ExtentRange::*which) {
  if (spec.dim_ranges.empty()) return spec.shape;
  std::vector<int64_t> shape;
  for (const ExtentRange& range : spec.dim_ranges) shape.push_back(range.*which);
  return shape;
}

std::string TensorSpec::Describe() const {
  if (dim_ranges.empty()) return name + ": " + DtypeName(dtype) + ShapeString(shape, dim_symbols);
  std::ostringstream out;  // each dynamic extent with its range: "[batch=1..8, 3, 224, 224]"
  out << name << ": " << DtypeName(dtype) << "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    out << (i ? ", " : "");
    if (shape[i] != kDynamicExtent && dim_ranges[i].min == dim_ranges[i].max) {
      out << shape[i];
      continue;
    }
    if (i < dim_symbols.size() && !dim_symbols[i].empty()) out << dim_symbols[i] << "=";
    out << dim_ranges[i].min << ".." << dim_ranges[i].max;
  }
  out << "]";
  return out.str();
}

std::string ArtifactMetadata::ToJson() const {
  json::Array input_specs, output_specs, features;
  for (const std::string& feature : cpu_features) features.push_back(tvm::ffi::String(feature));
  for (const TensorSpec& spec : inputs) input_specs.push_back(SpecToJson(spec));
  for (const TensorSpec& spec : outputs) output_specs.push_back(SpecToJson(spec));
  json::Object object{
      {"format_version", format_version},
      {"target", tvm::ffi::String(target)},
      {"tvm_version", tvm::ffi::String(tvm_version)},
      {"tvmbridge_version", tvm::ffi::String(tvmbridge_version)},
      {"entry", tvm::ffi::String(entry)},
      {"inputs", input_specs},
      {"outputs", output_specs},
      {"output_is_tuple", output_is_tuple},
      {"artifact_sha256", tvm::ffi::String(artifact_sha256)},
      {"cpu_features", features},
  };
  return std::string(json::Stringify(object));
}

std::string ArtifactMetadata::Digest(const void* library, size_t size) const {
  // Over our own serialisation, not the stored text: fields are covered, formatting is not.
  ArtifactMetadata unsigned_copy = *this;
  unsigned_copy.artifact_sha256.clear();
  std::string json = unsigned_copy.ToJson();
  Sha256 hash;
  hash.Update(json.data(), json.size());
  hash.Update(library, size);
  return hash.HexDigest();
}

void VerifyArtifact(const ArtifactMetadata& metadata, const void* library, size_t size) {
  std::string digest = metadata.Digest(library, size);
  TORCH_CHECK(digest == metadata.artifact_sha256,
              "tvmbridge: the compiled module was altered or corrupted: the SHA-256 of its "
              "metadata and embedded TVM library is ",
              digest, " but the artifact records ", metadata.artifact_sha256,
              "; refusing to load it");
  std::string mismatch = TargetMismatch(metadata.target);
  TORCH_CHECK(mismatch.empty(),
              "tvmbridge: the compiled module cannot run on this machine: ", mismatch,
              ". Recompile it here");
  std::vector<std::string> missing = MissingCpuFeatures(metadata.cpu_features);
  if (!missing.empty()) {
    std::string names;
    for (const std::string& feature : missing) names += (names.empty() ? "" : ", ") + feature;
    TORCH_CHECK(false, "tvmbridge: the compiled module uses CPU features this CPU lacks (", names,
                "); it was compiled for ", metadata.target,
                ". Recompile it for this machine (or a target without them)");
  }
  std::string problem = SharedObjectProblem(library, size);
  TORCH_CHECK(problem.empty(), "tvmbridge: the embedded TVM library cannot be loaded: ", problem);
}

ArtifactMetadata ArtifactMetadata::FromJson(const std::string& text) {
  tvm::ffi::String error;
  json::Value value = json::Parse(text, &error);
  TORCH_CHECK(error.empty(), "tvmbridge: corrupted artifact metadata: ", std::string(error));
  auto object = value.try_cast<json::Object>();
  TORCH_CHECK(object.has_value(), "tvmbridge: corrupted artifact metadata: not a JSON object");
  ArtifactMetadata meta;
  meta.format_version = Field<int64_t>(*object, "format_version", "metadata");
  TORCH_CHECK(meta.format_version == kArtifactFormatVersion,
              "tvmbridge: the compiled module has artifact format version ", meta.format_version,
              " but this tvmbridge reads version ", kArtifactFormatVersion,
              "; recompile the model with this tvmbridge");
  meta.target = std::string(Field<tvm::ffi::String>(*object, "target", "metadata"));
  meta.tvm_version = std::string(Field<tvm::ffi::String>(*object, "tvm_version", "metadata"));
  meta.tvmbridge_version =
      std::string(Field<tvm::ffi::String>(*object, "tvmbridge_version", "metadata"));
  meta.entry = std::string(Field<tvm::ffi::String>(*object, "entry", "metadata"));
  meta.inputs = SpecsFromJson(*object, "inputs");
  meta.outputs = SpecsFromJson(*object, "outputs");
  meta.output_is_tuple = Field<bool>(*object, "output_is_tuple", "metadata");
  meta.artifact_sha256 =
      std::string(Field<tvm::ffi::String>(*object, "artifact_sha256", "metadata"));
  // Optional: absent means nothing to check.
  auto features = object->find(tvm::ffi::String("cpu_features"));
  if (features != object->end()) {
    auto names = (*features).second.try_cast<json::Array>();
    TORCH_CHECK(names.has_value(), "tvmbridge: corrupted artifact metadata: cpu_features");
    for (const tvm::ffi::Any& name : *names) {
      auto text = name.try_cast<tvm::ffi::String>();
      TORCH_CHECK(text.has_value(), "tvmbridge: corrupted artifact metadata: cpu_features");
      meta.cpu_features.emplace_back(*text);
    }
  }
  return meta;
}

}  // namespace tvmbridge
