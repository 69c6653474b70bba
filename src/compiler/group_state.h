// What enable()'s graph pass (group_pass.cc) and its run-time operator (group_operator.cc)
// share: the node they agree on, the settings each group was made with, the counters, and the
// lock one compilation holds.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

#include <ATen/core/interned_strings.h>

#include "compiler/compilation_group.h"

namespace tvmbridge::groups {

// The node the pass makes: its subgraph (attr::Subgraph) is the region; `attribute_inputs`
// holds 1 per input that is a module attribute (a weight, compiled in as a constant) and
// `settings_id` names the settings it was made under.
c10::Symbol GroupKind();
c10::Symbol AttributeInputsAttribute();
c10::Symbol SettingsIdAttribute();

// The settings graphs optimised now get, with their id; nullptr when the pass is disabled or
// suspended on this thread.
std::pair<int64_t, std::shared_ptr<const GroupSettings>> CurrentSettings();
// The settings a group was made with; throws once they were released at shutdown.
std::shared_ptr<const GroupSettings> SettingsById(int64_t id);

struct Counters {
  std::atomic<int64_t> groups{0}, compiles{0}, symbolic_compiles{0}, disk_loads{0}, fallbacks{0},
      grad_calls{0};
};
Counters& Statistics();

// One compilation at a time in the process: TVM's pipeline runs under Python's GIL anyway,
// and the frontend's builders are not meant to be shared across threads.
std::mutex& CompileMutex();

}  // namespace tvmbridge::groups
