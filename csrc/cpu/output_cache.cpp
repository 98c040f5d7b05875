// Reuse of large output buffers across calls, on huge pages where they are gathered from.
//
// On the target VM a fresh 1 GB output costs 0.5-0.6 s of page faults (262,144 first touches), more
// than the whole packed SpMM. torch's CPU allocator returns such blocks to the OS on free, so every
// call of an op returning a fresh tensor pays again. Ops here allocate large outputs through
// output_empty(): when the returned tensor dies its block goes back to a small cache (the most
// recently released kMaxBlocks = 32 blocks within QGNN_OUTPUT_CACHE_MB megabytes, default 4096; 0
// disables) and the next call of a similar size takes it, already mapped — the same idea as the CUDA
// caching allocator. Small outputs use at::empty. A packed GCN forward frees about 8 such blocks; 32
// leave room for three models run in turn (qgnn bench: INT8, INT4, INT2).
//
// New blocks of up to kMaxHugeBytes (packed rows: the tables that the SpMM and SMP kernels gather
// from at random) are advised for transparent huge pages. With 4 KB pages nearly every random row of a
// 64 MB table misses the TLB; with 2 MB pages the 2M-node INT2 SpMM ran 30 % faster (190 -> 135 ms).
// The first such allocation on a fragmented machine waits while the kernel compacts memory (measured
// here: 0.2 s for 64 MB, once; 1 GB took 3.8 s, hence the cap); cached blocks keep their pages.
// QGNN_HUGE_PAGES=0 turns the advice off.
#include "output_cache.h"

#include <ATen/ATen.h>

#include <sys/mman.h>

#include <cstdlib>
#include <mutex>
#include <vector>

namespace qgnn {
namespace cpu {
namespace {

constexpr size_t kMinBytes = size_t(8) << 20;
constexpr size_t kAlign = size_t(2) << 20;
constexpr size_t kMaxBlocks = 32;
constexpr size_t kMaxHugeBytes = size_t(256) << 20;

struct Block {
  void* ptr;
  size_t bytes;
};

struct Cache {
  std::mutex mu;
  std::vector<Block> free_blocks;
  std::vector<Block> live;
  size_t cached_bytes = 0;
  size_t limit;
  bool huge;
  Cache() {
    const char* env = std::getenv("QGNN_OUTPUT_CACHE_MB");
    limit = (env ? static_cast<size_t>(std::max(0L, std::atol(env))) : size_t(4096)) << 20;
    const char* hp = std::getenv("QGNN_HUGE_PAGES");
    huge = hp == nullptr || std::atoi(hp) != 0;
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: tensors may die after static destruction
  return *c;
}

void release(void* ptr) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  size_t bytes = 0;
  for (size_t i = 0; i < c.live.size(); ++i)
    if (c.live[i].ptr == ptr) {
      bytes = c.live[i].bytes;
      c.live[i] = c.live.back();
      c.live.pop_back();
      break;
    }
  if (bytes == 0 || bytes > c.limit) {
    std::free(ptr);
    return;
  }
  // Keep the newest block; evict the least recently released ones beyond the limits.
  c.free_blocks.push_back(Block{ptr, bytes});
  c.cached_bytes += bytes;
  while (c.free_blocks.size() > kMaxBlocks || c.cached_bytes > c.limit) {
    std::free(c.free_blocks.front().ptr);
    c.cached_bytes -= c.free_blocks.front().bytes;
    c.free_blocks.erase(c.free_blocks.begin());
  }
}

}  // namespace

at::Tensor output_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * at::elementSize(at::typeMetaToScalarType(options.dtype()));
  Cache& c = cache();
  if (bytes < kMinBytes || c.limit == 0) return at::empty(sizes, options);
  void* ptr = nullptr;
  size_t got = 0;
  {
    std::lock_guard<std::mutex> lock(c.mu);
    // The smallest cached block that fits without wasting more than half of it.
    size_t best = c.free_blocks.size();
    for (size_t i = 0; i < c.free_blocks.size(); ++i) {
      const size_t b = c.free_blocks[i].bytes;
      if (b >= bytes && b <= 2 * bytes && (best == c.free_blocks.size() || b < c.free_blocks[best].bytes)) best = i;
    }
    if (best < c.free_blocks.size()) {
      ptr = c.free_blocks[best].ptr;
      got = c.free_blocks[best].bytes;
      c.cached_bytes -= got;
      c.free_blocks.erase(c.free_blocks.begin() + static_cast<std::ptrdiff_t>(best));
    } else if (!c.free_blocks.empty() && c.cached_bytes + bytes > c.limit) {
      for (const Block& b : c.free_blocks) std::free(b.ptr);  // make room rather than hold both
      c.free_blocks.clear();
      c.cached_bytes = 0;
    }
  }
  if (ptr == nullptr) {
    got = (bytes + kAlign - 1) / kAlign * kAlign;
    ptr = std::aligned_alloc(kAlign, got);
    TORCH_CHECK(ptr != nullptr, "out of memory allocating ", bytes, " bytes");
#ifdef MADV_HUGEPAGE
    if (c.huge && got <= kMaxHugeBytes) madvise(ptr, got, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  }
  {
    std::lock_guard<std::mutex> lock(c.mu);
    c.live.push_back(Block{ptr, got});
  }
  return at::from_blob(ptr, sizes, [](void* p) { release(p); }, options.device(at::kCPU));
}

}  // namespace cpu
}  // namespace qgnn
