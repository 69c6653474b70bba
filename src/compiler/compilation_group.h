// enable(): TorchScript's graph executor hands supported subgraphs to TVM by itself.
//
// A custom pass (group_pass.cc), run by the executor when it optimises a graph, replaces each
// region the partitioner finds from op kinds alone with a `tvmbridge::CompilationGroup` node
// holding the region as a subgraph. The node (group_operator.cc) compiles lazily: on its first
// call with given input shapes and dtypes, the subgraph (weights and scalar inputs made
// constants) goes through the same path as tvmbridge.torch.compile, and the result is cached
// in memory and on disk (group_cache.cc). Whatever cannot be compiled runs the original
// subgraph in TorchScript. This file holds the settings and the counters.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "compiler/compile.h"

namespace tvmbridge {

struct GroupSettings {
  partition::PartitionOptions options;
  BuildSettings build;
  std::string cache_dir;    // compiled groups are kept here; empty: memory only
  std::string fingerprint;  // target, versions, options, tuning: part of every cache key
  // A group whose calls change extents compiles one version over ranges for them
  // (group_signature.h) instead of one version per shape.
  bool dynamic_shapes = false;
};

struct GroupStats {
  int64_t groups = 0;             // CompilationGroup nodes the pass created
  int64_t compiles = 0;           // group compilations (one per group and input signature)
  int64_t symbolic_compiles = 0;  // of those, compiled over ranges of extents (dynamic=True)
  int64_t disk_loads = 0;         // compiled groups read from the disk cache instead
  int64_t fallbacks = 0;          // signatures that run the original subgraph (failed, or no TVM)
  int64_t grad_calls = 0;         // calls that ran TorchScript because inputs required grad
};

// Graphs the executor optimises from now on get compilation groups built with `settings`.
void EnableCompilationGroups(GroupSettings settings);
// Graphs optimised from now on are left alone; groups already made keep working.
void DisableCompilationGroups();
// Disables, and drops every settings object (and so the build functions they hold, which
// may be Python callables): called before Python shuts down. Groups that still need to
// compile afterwards fail and run TorchScript.
void ReleaseCompilationSettings();
bool CompilationGroupsEnabled();
GroupStats CompilationGroupStatistics();

// While one is alive, the pass leaves the graphs this thread optimises alone: compiling runs
// graphs through TorchScript's executor (the never-slower timing), which must not nest.
class CompilationGroupsSuspended {
 public:
  CompilationGroupsSuspended();
  ~CompilationGroupsSuspended();
  CompilationGroupsSuspended(const CompilationGroupsSuspended&) = delete;
  CompilationGroupsSuspended& operator=(const CompilationGroupsSuspended&) = delete;
};

}  // namespace tvmbridge
