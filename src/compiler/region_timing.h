// Measures a compiled region against PyTorch running the same nodes, on the same inputs, so
// that compile can keep PyTorch wherever TVM would make the model slower.
#pragma once

#include <functional>
#include <optional>

#include "partition/partitioner.h"
#include "tvmbridge/tvm_module.h"

namespace tvmbridge {

struct RegionTimes {
  double tvm_ms = 0;    // median of TVMModule::Run
  double torch_ms = 0;  // median of the region's nodes in TorchScript's graph executor
};

// Runs both alternately, with warm-up and a settling pause before each run, as many rounds as
// fit about 0.3 s per contender (5 to 25), and returns the medians. The one timing loop of
// both compile paths: TimeRegion below, and the export path's regions (through tvm-ffi).
RegionTimes TimeAlternately(const std::function<void()>& run_torch,
                            const std::function<void()>& run_tvm);

// Times both on random inputs of the observed shapes. nullopt when the region cannot be
// measured safely: a non-floating-point input (made-up indices could read out of bounds), or
// nodes that read a non-constant value from outside the region.
std::optional<RegionTimes> TimeRegion(const partition::Region& region,
                                      const partition::Observations& observations,
                                      TVMModule& module);

// Moves region `index` back to PyTorch: its nodes' placements get region -1, `cause` and
// `reason`; the region is removed and later regions' indices shift down by one.
void ReturnRegionToPyTorch(partition::Partition& partition, size_t index,
                           partition::PlacementCause cause, const std::string& reason);

}  // namespace tvmbridge
