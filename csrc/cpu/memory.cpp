// Transparent huge pages for large fresh outputs (see KERNELS.md: THP is madvise-only on the target
// machine). A gathered table of random rows misses the TLB on nearly every access with 4 KiB pages,
// and a fresh 1 GB output costs 262,144 page faults without them. The advice is a hint: failure is
// ignored, and nothing changes on systems without THP.
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "kernels.h"

namespace qgnn {
namespace cpu {

void advise_huge_pages(void* ptr, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (ptr == nullptr || bytes < 2 * kHuge) return;
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(ptr) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(ptr) + bytes) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)ptr;
  (void)bytes;
#endif
}

}  // namespace cpu
}  // namespace qgnn
