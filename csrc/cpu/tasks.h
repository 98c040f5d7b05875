// Work sharing for the CPU ops: tasks are handed out one at a time from a shared counter.
//
// at::parallel_for splits a range into one fixed share per thread. When another process holds one of
// the cores, the thread that the OS parks there finishes its share late and the op waits for it (on
// the 2-vCPU VM the packed GCN forward ran slower on two threads than on one that way). Pulling tasks
// lets the running threads take the parked one's work; which thread ran a task never changes a result.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

namespace qgnn {
namespace cpu {

// A worker's scratch memory, 64-byte aligned (a cache line; AVX-512's aligned loads and stores).
class Scratch {
 public:
  explicit Scratch(size_t bytes) : buf_(bytes + 64) {}
  void* get() { return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buf_.data()) + 63) & ~uintptr_t(63)); }

 private:
  std::vector<uint8_t> buf_;
};

// Runs worker(take) on up to `max_workers` of torch's threads (inline when that is 1); `take()` returns
// the next task index, >= tasks once all are taken. A worker sets up its scratch once, then loops.
template <class Worker>
void share_tasks(int64_t tasks, int64_t max_workers, const Worker& worker) {
  if (tasks <= 0) return;
  std::atomic<int64_t> next{0};
  const auto take = [&next]() { return next.fetch_add(1, std::memory_order_relaxed); };
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>({max_workers, tasks, at::get_num_threads()}));
  at::parallel_for(0, workers, 1, [&](int64_t w0, int64_t w1) {
    for (int64_t w = w0; w < w1; ++w) worker(take);
  });
}

}  // namespace cpu
}  // namespace qgnn
