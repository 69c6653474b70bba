// Generated code's parallel loops on PyTorch's threads.
#pragma once

#include <string>

namespace tvmbridge {

// Points the parallel-launch hook of the loaded TVM library at `library_path` to PyTorch's
// thread pool (at::parallel_for), instead of TVM's own. Two pools on the same cores fight:
// each spins after its work while the other wants the cores (BERT-base with PyTorch's matrix
// products between TVM kernels ran 3x slower). With one pool, TVM kernels, the PyTorch ops
// between regions and the ATen kernels generated code calls (aten_kernels.cc) take turns,
// and torch.set_num_threads governs them all. The library must be loaded already.
// A library whose code synchronises tasks with barriers keeps TVM's pool (at::parallel_for
// does not promise that all tasks run at once).
void RunParallelLoopsOnTorchThreads(const std::string& library_path);

}  // namespace tvmbridge
