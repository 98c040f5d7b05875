// CPU driver for the __host__ __device__ code the CUDA kernels are built from
// (csrc/common/packed_math.h, csrc/common/packed_rows.h). Compiled with plain g++ by
// tests/kernels/test_device_math.py, which writes inputs to a folder, runs
//
//     device_math_harness <mode> <folder>
//
// and compares <folder>/out.bin with the PyTorch references bit for bit. Each mode calls the same
// functions as the matching kernel, in loops where the kernel has threads:
//   unpack, swar, dequant, requant  per-word / per-element helpers
//   pack, quantize_pack             pack.cu (one thread per word)
//   spmm                            spmm.cu (short-row chunks, and the long-row kernel's groups,
//                                   batches, scratch row and epilogue)
//   gemm                            gemm.cu (k-slices expanded to byte-words, dp4a, fold, epilogue)
// params.txt holds integers; floats are passed as their IEEE-754 bit patterns.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "packed_math.h"
#include "packed_rows.h"

namespace {

using namespace qgnn;

std::string g_dir;

template <typename T>
std::vector<T> read_bin(const std::string& name) {
  std::ifstream f(g_dir + "/" + name, std::ios::binary);
  if (!f) throw std::runtime_error("missing input " + name);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<T> out(bytes.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  return out;
}

template <typename T>
void write_out(const std::vector<T>& v) {
  std::ofstream f(g_dir + "/out.bin", std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
}

// params.txt: "name value" lines.
std::map<std::string, int64_t> read_params() {
  std::ifstream f(g_dir + "/params.txt");
  std::map<std::string, int64_t> p;
  std::string k;
  int64_t v;
  while (f >> k >> v) p[k] = v;
  return p;
}

struct Params {
  std::map<std::string, int64_t> m;
  int64_t i(const std::string& k) const {
    auto it = m.find(k);
    if (it == m.end()) throw std::runtime_error("missing parameter " + k);
    return it->second;
  }
  float f(const std::string& k) const {
    const uint32_t bits = static_cast<uint32_t>(i(k));
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
  }
};

// Calls fn.template operator()<BITS>() for a run-time bit width.
template <typename Fn>
void with_bits(int bits, Fn&& fn) {
  switch (bits) {
    case 1: fn(std::integral_constant<int, 1>{}); break;
    case 2: fn(std::integral_constant<int, 2>{}); break;
    case 4: fn(std::integral_constant<int, 4>{}); break;
    case 8: fn(std::integral_constant<int, 8>{}); break;
    default: throw std::runtime_error("bad bits");
  }
}

void mode_unpack(const Params& P) {
  const auto words = read_bin<uint32_t>("words.bin");
  std::vector<uint32_t> out;
  with_bits(static_cast<int>(P.i("bits")), [&](auto b) {
    constexpr int B = decltype(b)::value;
    uint32_t codes[32 / B];
    for (uint32_t w : words) {
      pm::unpack_word<B>(w, codes);
      out.insert(out.end(), codes, codes + 32 / B);
    }
  });
  write_out(out);
}

// Sum of each code position over all words three ways: SWAR16 fields, int32 lanes, and (total
// over the row) the byte-word / dp4a path of row_code_sum. Appends: swar[32/B], i32[32/B], total.
void mode_swar(const Params& P) {
  const auto words = read_bin<uint32_t>("words.bin");
  const int bits = static_cast<int>(P.i("bits"));
  std::vector<int64_t> out;
  with_bits(bits, [&](auto b) {
    constexpr int B = decltype(b)::value;
    if (static_cast<int64_t>(words.size()) > pm::Swar16<B>::kCapacity) throw std::runtime_error("over capacity");
    uint32_t swar[pm::Swar16<B>::kRegs] = {};
    int32_t lanes[32 / B] = {};
    for (uint32_t w : words) {
      pm::swar16_add_word<B>(swar, w);
      pm::i32_add_word<B>(lanes, w);
    }
    for (int j = 0; j < 32 / B; ++j) out.push_back(pm::swar16_get<B>(swar, j));
    for (int j = 0; j < 32 / B; ++j) out.push_back(lanes[j]);
  });
  const int64_t n = static_cast<int64_t>(words.size());
  out.push_back(pm::row_code_sum(words.data(), n, n * (32 / bits), bits));
  write_out(out);
}

void mode_dequant(const Params&) {
  const auto s = read_bin<int32_t>("s.bin");
  const auto scale = read_bin<float>("scale.bin");
  const auto rs = read_bin<float>("rs.bin");
  std::vector<float> out(s.size());
  for (size_t t = 0; t < s.size(); ++t) out[t] = pm::dequant_sum(s[t], scale[t], rs[t]);
  write_out(out);
}

void mode_requant(const Params& P) {
  const auto x = read_bin<float>("x.bin");
  std::vector<uint8_t> out(x.size());
  for (size_t t = 0; t < x.size(); ++t)
    out[t] = static_cast<uint8_t>(pm::requant_one(x[t], static_cast<int>(P.i("bits")), P.f("scale"),
                                                  static_cast<int>(P.i("zero")), static_cast<int>(P.i("mult")),
                                                  static_cast<int>(P.i("skew"))));
  write_out(out);
}

void mode_pack(const Params& P) {
  const auto codes = read_bin<uint8_t>("codes.bin");
  const int64_t rows = P.i("rows"), cols = P.i("cols");
  const int bits = static_cast<int>(P.i("bits"));
  const int64_t words = words_per_row(cols, bits);
  std::vector<uint32_t> out(rows * words);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t wi = 0; wi < words; ++wi)
      out[r * words + wi] = rows::pack_word(codes.data() + r * cols, cols, wi, bits);
  write_out(out);
}

void mode_quantize_pack(const Params& P) {
  const auto x = read_bin<float>("x.bin");
  const int64_t rows = P.i("rows"), cols = P.i("cols");
  const int bits = static_cast<int>(P.i("bits"));
  const int64_t words = words_per_row(cols, bits);
  std::vector<uint32_t> out(rows * words);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t wi = 0; wi < words; ++wi)
      out[r * words + wi] = rows::quantize_pack_word(x.data() + r * cols, cols, wi, bits, P.f("scale"),
                                                     static_cast<int>(P.i("zero")), static_cast<int>(P.i("mult")),
                                                     static_cast<int>(P.i("skew")));
  write_out(out);
}

// The SpMM kernels' schedule, sequentially: rows of degree <= long_row run short_row_chunk for
// every chunk; longer rows run long_row_partial for every (group, chunk) into a zeroed scratch row,
// in batches of `batch` edges, then the per-item epilogue.
template <int B, int VEC, bool W>
void run_spmm(const rows::SpmmParams& p, const Params& P) {
  using Acc = rows::ChunkAcc<B, VEC, W>;
  if (p.words % VEC != 0) throw std::runtime_error("words not a multiple of vec");
  const int64_t chunks = p.words / VEC;
  int64_t long_row = P.i("long_row");
  if (long_row > Acc::kBatch) long_row = Acc::kBatch;
  const int64_t groups = P.i("groups"), batch = P.i("batch");
  std::vector<typename Acc::Scratch> scratch(static_cast<size_t>(chunks * Acc::kCodes));
  const int64_t items = p.out_packed != nullptr ? p.out_words : p.cols;
  for (int64_t row = 0; row < p.num_rows; ++row) {
    const int64_t degree = p.indptr[row + 1] - p.indptr[row];
    if (degree <= long_row) {
      for (int64_t c = 0; c < chunks; ++c) rows::short_row_chunk<B, VEC, W>(p, row, c);
      continue;
    }
    std::fill(scratch.begin(), scratch.end(), 0);
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t c = 0; c < chunks; ++c)
        rows::long_row_partial<B, VEC, W>(p, row, c, g, groups, batch, scratch.data());
    for (int64_t t = 0; t < items; ++t) rows::long_row_epilogue_item(p, row, scratch.data(), t);
  }
}

void mode_spmm(const Params& P) {
  const auto indptr = read_bin<int64_t>("indptr.bin");
  const auto indices = read_bin<int32_t>("indices.bin");
  const auto packed = read_bin<uint32_t>("packed.bin");
  const auto values = read_bin<float>("values.bin");
  const auto row_scale = read_bin<float>("row_scale.bin");
  rows::SpmmParams p;
  p.indptr = indptr.data();
  p.indices = indices.data();
  p.values = P.i("weighted") ? values.data() : nullptr;
  p.packed = packed.data();
  p.num_rows = static_cast<int64_t>(indptr.size()) - 1;
  p.cols = P.i("cols");
  p.bits = static_cast<int>(P.i("bits"));
  p.words = words_per_row(p.cols, p.bits);
  p.mult = static_cast<int>(P.i("mult"));
  p.scale = P.f("scale");
  p.zero = static_cast<int>(P.i("zero"));
  p.row_scale = P.i("has_row_scale") ? row_scale.data() : nullptr;
  std::vector<float> out_f;
  std::vector<uint32_t> out_q;
  if (P.i("requant")) {
    p.out_bits = static_cast<int>(P.i("out_bits"));
    p.out_words = words_per_row(p.cols, p.out_bits);
    out_q.assign(static_cast<size_t>(p.num_rows * p.out_words), 0u);
    p.out_packed = out_q.data();
    p.out_scale = P.f("out_scale");
    p.out_zero = static_cast<int>(P.i("out_zero"));
    p.out_mult = static_cast<int>(P.i("out_mult"));
    p.out_skew = static_cast<int>(P.i("out_skew"));
  } else {
    out_f.assign(static_cast<size_t>(p.num_rows * p.cols), -12345.f);
    p.out = out_f.data();
  }
  const int vec = static_cast<int>(P.i("vec"));
  const bool weighted = p.values != nullptr;
  with_bits(p.bits, [&](auto b) {
    constexpr int B = decltype(b)::value;
    if (vec == 4) weighted ? run_spmm<B, 4, true>(p, P) : run_spmm<B, 4, false>(p, P);
    else if (vec == 2) weighted ? run_spmm<B, 2, true>(p, P) : run_spmm<B, 2, false>(p, P);
    else weighted ? run_spmm<B, 1, true>(p, P) : run_spmm<B, 1, false>(p, P);
  });
  if (P.i("requant")) write_out(out_q);
  else write_out(out_f);
}

// The GEMM kernel's arithmetic per output: code sums per row, then for each k-slice both rows
// expanded to byte-words (expand_tile_word) and multiplied with dp4a, then fold and epilogue.
void mode_gemm(const Params& P) {
  const auto a = read_bin<uint32_t>("a.bin");
  const auto w = read_bin<uint32_t>("w.bin");
  const auto w_scale = read_bin<float>("w_scale.bin");
  const auto w_zero = read_bin<int32_t>("w_zero.bin");
  const auto bias = read_bin<float>("bias.bin");
  const int64_t n = P.i("n"), o = P.i("o"), k = P.i("k");
  const int a_bits = static_cast<int>(P.i("a_bits")), w_bits = static_cast<int>(P.i("w_bits"));
  const int64_t aw = words_per_row(k, a_bits), ww = words_per_row(k, w_bits);
  std::vector<int32_t> sa(n), sw(o);
  for (int64_t r = 0; r < n; ++r) sa[r] = pm::row_code_sum(a.data() + r * aw, aw, k, a_bits);
  for (int64_t c = 0; c < o; ++c) sw[c] = pm::row_code_sum(w.data() + c * ww, ww, k, w_bits);
  const int64_t slices = (k + rows::kTileK - 1) / rows::kTileK;
  std::vector<uint32_t> at(static_cast<size_t>(n * slices * rows::kTileK4)),
      wt(static_cast<size_t>(o * slices * rows::kTileK4));
  for (int64_t kt = 0; kt < slices; ++kt) {
    for (int64_t r = 0; r < n; ++r)
      for (int wi = 0; wi < rows::tile_words(a_bits); ++wi)
        rows::expand_tile_word(a.data(), n, aw, k, a_bits, r, kt, wi,
                               &at[(r * slices + kt) * rows::kTileK4 + wi * (8 / a_bits)]);
    for (int64_t c = 0; c < o; ++c)
      for (int wi = 0; wi < rows::tile_words(w_bits); ++wi)
        rows::expand_tile_word(w.data(), o, ww, k, w_bits, c, kt, wi,
                               &wt[(c * slices + kt) * rows::kTileK4 + wi * (8 / w_bits)]);
  }
  const bool has_bias = P.i("has_bias") != 0;
  std::vector<float> out(static_cast<size_t>(n * o));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < o; ++c) {
      uint32_t acc = 0;
      for (int64_t q = 0; q < slices * rows::kTileK4; ++q)
        acc = pm::dp4a_u8(at[r * slices * rows::kTileK4 + q], wt[c * slices * rows::kTileK4 + q], acc);
      const int32_t d = pm::fold_dot(acc, sa[r], sw[c], k, static_cast<int>(P.i("a_mult")),
                                     static_cast<int>(P.i("a_zero")), static_cast<int>(P.i("w_mult")), w_zero[c]);
      out[r * o + c] = pm::gemm_epilogue(d, P.f("a_scale"), w_scale[c], has_bias ? &bias[c] : nullptr);
    }
  write_out(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: device_math_harness <mode> <folder>\n";
    return 2;
  }
  g_dir = argv[2];
  try {
    const Params P{read_params()};
    const std::string mode = argv[1];
    if (mode == "unpack") mode_unpack(P);
    else if (mode == "swar") mode_swar(P);
    else if (mode == "dequant") mode_dequant(P);
    else if (mode == "requant") mode_requant(P);
    else if (mode == "pack") mode_pack(P);
    else if (mode == "quantize_pack") mode_quantize_pack(P);
    else if (mode == "spmm") mode_spmm(P);
    else if (mode == "gemm") mode_gemm(P);
    else throw std::runtime_error("unknown mode " + mode);
  } catch (const std::exception& e) {
    std::cerr << "device_math_harness: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
