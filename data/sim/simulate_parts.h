// The simulator's parts shared by its files (internal to data/sim): the seeded random helpers
// and the image space (simulate_space.cpp), one slide's patches and features
// (simulate_slide.cpp); simulate.cpp writes the dataset. See docs/simulator.md.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/sim/simulate.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace lm::data::sim {

constexpr const char* kVersion = "libramil simulator v1";
constexpr int kSharedDirs = 8;     // low-rank structured noise shared by every patch
constexpr int kEntityDirs = 3;     // low-rank structured noise specific to each entity
constexpr int kStainDirs = 4;      // low-dimensional part of the per-slide stain/scanner shift
constexpr int kBackground = 6;     // background prototypes (glass, blur, fat-like voids, pen, ...)
constexpr uint64_t kNoiseStride = 16;  // extra normals per patch beyond D (>= shared+entity dirs)

// ---- hashing / random helpers (Philox under hashed keys) ---------------------------------

uint64_t splitmix(uint64_t x);
uint64_t derive(uint64_t a, uint64_t b);
uint64_t hash_str(const std::string& s);
double next_normal(Generator& g);
double next_gamma(Generator& g, double a);
std::vector<double> next_dirichlet(Generator& g, const std::vector<double>& alpha);
int next_categorical(Generator& g, const std::vector<double>& p);
std::vector<double> normalized(std::vector<double> v);
void fill_normal(double* v, int64_t n, uint64_t key, uint64_t start);
double norm2(const double* v, int64_t n);
void scale_to_unit(double* v, int64_t n);
void orthonormalize_rows(std::vector<double>& m, int64_t count, int64_t len);
Tensor to_tensor(const std::vector<double>& v, int64_t rows, int64_t cols);

// ---- the image space -----------------------------------------------------------------------

// The image space in double precision (rows of length D).
struct Space {
  int64_t D = 0, Dt = 0, K = 0;
  std::vector<double> A;       // (D, Dt)
  std::vector<double> u, m;    // (K, D)
  std::vector<double> bg;      // (kBackground, D)
  std::vector<double> shared;  // (kSharedDirs, D)
  std::vector<double> ent;     // (K * kEntityDirs, D)
  std::vector<double> stain;   // (kStainDirs, D)
};

Space build_space(const SimulateOptions& o, const Tensor& emb_in);
void validate(const SimulateOptions& o, const TaskPriors& p);

// ---- one slide -----------------------------------------------------------------------------

struct Slide {
  std::string name;
  int label = 0;
  int64_t n = 0;
  std::vector<int64_t> coords;   // (n, 2): x, y
  std::vector<int32_t> entity;   // (n), -1 background
  std::vector<int32_t> bg_type;  // (n), background prototype or -1
  std::vector<float> features;   // (n, D)
  double focal_fraction = 0;
  int64_t background = 0;
};

int64_t task_median_patches(const std::string& task);
Slide make_slide(const SimulateOptions& o, const TaskPriors& p, const Space& sp, int index, int label,
                 const std::vector<std::vector<bool>>& characteristic);

}  // namespace lm::data::sim
