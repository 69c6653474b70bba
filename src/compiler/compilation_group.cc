#include "compiler/compilation_group.h"

#include <vector>

#include <c10/util/Exception.h>

#include "compiler/group_state.h"

namespace tvmbridge {
namespace groups {
namespace {

struct Registry {
  std::mutex mutex;
  // Every settings object ever enabled, by id: groups made under one keep using it. Groups
  // look theirs up when they compile rather than holding it, so that releasing the registry
  // drops every reference to the Python build function while Python is still alive.
  std::vector<std::shared_ptr<const GroupSettings>> settings;
  bool enabled = false;
};

Registry& GetRegistry() {
  static Registry registry;
  return registry;
}

thread_local int pass_suspended = 0;

}  // namespace

c10::Symbol GroupKind() {
  static const c10::Symbol kind = c10::Symbol::fromQualString("tvmbridge::CompilationGroup");
  return kind;
}

c10::Symbol AttributeInputsAttribute() {
  static const c10::Symbol name = c10::Symbol::attr("attribute_inputs");
  return name;
}

c10::Symbol SettingsIdAttribute() {
  static const c10::Symbol name = c10::Symbol::attr("settings_id");
  return name;
}

std::pair<int64_t, std::shared_ptr<const GroupSettings>> CurrentSettings() {
  if (pass_suspended > 0) return {-1, nullptr};
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  if (!registry.enabled) return {-1, nullptr};
  return {static_cast<int64_t>(registry.settings.size()) - 1, registry.settings.back()};
}

std::shared_ptr<const GroupSettings> SettingsById(int64_t id) {
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  std::shared_ptr<const GroupSettings> settings = registry.settings.at(static_cast<size_t>(id));
  TORCH_CHECK(settings != nullptr,
              "tvmbridge: compilation settings were released (the "
              "interpreter is shutting down)");
  return settings;
}

Counters& Statistics() {
  static Counters counters;
  return counters;
}

std::mutex& CompileMutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace groups

CompilationGroupsSuspended::CompilationGroupsSuspended() { ++groups::pass_suspended; }
CompilationGroupsSuspended::~CompilationGroupsSuspended() { --groups::pass_suspended; }

void EnableCompilationGroups(GroupSettings settings) {
  groups::Registry& registry = groups::GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.settings.push_back(std::make_shared<const GroupSettings>(std::move(settings)));
  registry.enabled = true;
}

void DisableCompilationGroups() {
  groups::Registry& registry = groups::GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.enabled = false;
}

void ReleaseCompilationSettings() {
  groups::Registry& registry = groups::GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  registry.enabled = false;
  for (auto& settings : registry.settings) settings.reset();
}

bool CompilationGroupsEnabled() {
  groups::Registry& registry = groups::GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  return registry.enabled;
}

GroupStats CompilationGroupStatistics() {
  groups::Counters& counters = groups::Statistics();
  return {counters.groups.load(),     counters.compiles.load(),  counters.symbolic_compiles.load(),
          counters.disk_loads.load(), counters.fallbacks.load(), counters.grad_calls.load()};
}

}  // namespace tvmbridge
