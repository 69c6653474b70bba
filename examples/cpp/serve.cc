// Runs a model that tvmbridge compiled and saved (tt.compile, then tt.save), with libtorch and
// TVM's runtime only: no Python.
//
//   serve MODEL.pt SHAPE OUTPUT.pt      SHAPE like 1x3x224x224
//
// The input is torch.randn(SHAPE) after torch.manual_seed(0), as Python makes it; the output
// goes to OUTPUT.pt, which torch.load reads.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/script.h>
#include <torch/serialize.h>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: serve MODEL.pt SHAPE OUTPUT.pt (SHAPE like 1x3x224x224)\n";
    return 2;
  }
  std::vector<int64_t> shape;
  std::stringstream dims(argv[2]);
  for (std::string dim; std::getline(dims, dim, 'x');) shape.push_back(std::stoll(dim));
  try {
    torch::jit::Module model = torch::jit::load(argv[1]);
    torch::manual_seed(0);
    torch::Tensor input = torch::randn(shape);
    torch::NoGradGuard no_grad;
    torch::Tensor output = model.forward({input}).toTensor();
    std::vector<char> bytes = torch::pickle_save(output);
    std::ofstream(argv[3], std::ios::binary)
        .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::cout << "output " << output.sizes() << "\n";
  } catch (const std::exception& error) {  // a bad input's error names what was expected
    std::cerr << error.what() << "\n";
    return 1;
  }
  return 0;
}
