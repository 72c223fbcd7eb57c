#include "weave/detail/stack.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <system_error>

#include "sanitizer.hpp"

namespace weave::detail {

namespace {
std::atomic<std::size_t> g_guarded{0};

std::size_t read_max_map_count() {
  std::size_t value = 65530;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    unsigned long v = 0;
    if (std::fscanf(f, "%lu", &v) == 1 && v > 0) value = v;
    std::fclose(f);
  }
  return value;
}
}  // namespace

std::size_t StackPool::page_size() noexcept {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

std::size_t StackPool::guard_budget() noexcept {
  // Each guarded stack costs two mappings; a quarter of the limit leaves the other half of it
  // for the program's own mappings (heap arenas, libraries, files).
#if WEAVE_TSAN
  // TSan maps about two regions of its own per fiber: leave it most of the limit.
  static const std::size_t budget = read_max_map_count() / 16;
#else
  static const std::size_t budget = read_max_map_count() / 4;
#endif
  return budget;
}

std::size_t StackPool::guarded_stacks() noexcept {
  return g_guarded.load(std::memory_order_relaxed);
}

StackPool::~StackPool() {
  std::size_t guarded = 0;
  for (auto& sc : classes_)
    for (auto& s : sc.free) guarded += s.guarded;
  // Stacks of abandoned fibers are not in the free lists; their guards are not counted back,
  // which only makes the budget more careful.
  g_guarded.fetch_sub(guarded, std::memory_order_relaxed);
  if (keep_mapped_) return;  // leaked on purpose: see keep_mapped()
  for (auto& slab : slabs_) ::munmap(slab.base, slab.bytes);
}

StackPool::SizeClass& StackPool::size_class(std::size_t class_size) {
  if (last_ && last_->class_size == class_size) return *last_;
  for (auto& sc : classes_)
    if (sc.class_size == class_size) return *(last_ = &sc);
  classes_.reserve(32);  // SizeClass addresses must stay put: last_ points into the vector
  if (classes_.size() == classes_.capacity())
    throw std::length_error("weave: too many distinct fiber stack sizes (at most 32)");
  classes_.push_back(SizeClass{class_size, {}, 0, 0});
  return *(last_ = &classes_.back());
}

void StackPool::grow(SizeClass& sc) {
  // Slabs grow with demand: small programs map little, big ones map few large slabs.
  // Packed stacks are small: at least a page's worth per slab, and up to 4096 at once.
  std::size_t count = sc.packed() ? std::clamp<std::size_t>(sc.slots, 64, 4096)
                                  : std::clamp<std::size_t>(sc.slots, 16, 1024);
  std::size_t bytes = count * sc.class_size;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED)
    throw std::system_error(errno, std::generic_category(), "weave: cannot map fiber stacks");
  slabs_.push_back(Slab{static_cast<char*>(p), bytes});
  const std::size_t page = page_size();
  sc.free.reserve(sc.free.size() + count);
  // Pushed high to low so that the lowest addresses are handed out first.
  for (std::size_t i = count; i-- > 0;) {
    StackSlot s;
    s.base = static_cast<char*>(p) + i * sc.class_size;
    s.class_size = sc.class_size;
    s.size = sc.packed() ? sc.class_size : sc.class_size - page;  // packed: no guard page
#if WEAVE_VALGRIND
    VALGRIND_STACK_REGISTER(s.bottom(), s.top());
#endif
    sc.free.push_back(s);
  }
  sc.slots += count;
}

std::size_t StackPool::class_size_for(std::size_t usable) noexcept {
  const std::size_t page = page_size();
#if !WEAVE_ASAN && !WEAVE_TSAN
  // Packed stacks: below a page, whole kibibytes side by side with no guard page, so that
  // idle fibers that need little share pages (see kSmallStackMin in the header).
  // 0 is no request at all (a Loop::Options::stack_size of 0): the usual minimum, not this.
  if (usable > 0 && usable < page) {
    usable = std::max<std::size_t>(usable, kSmallStackMin);
    return (usable + 1023) / 1024 * 1024;
  }
#endif
  usable = std::max<std::size_t>(usable, 4 * page);
  usable = (usable + page - 1) / page * page;
  return usable + page;
}

StackSlot StackPool::acquire(std::size_t usable) {
  const std::size_t page = page_size();
  SizeClass& sc = size_class(class_size_for(usable));
  if (sc.free.empty()) grow(sc);
  StackSlot s = sc.free.back();
  sc.free.pop_back();
  if (s.warm) --sc.warm;
  s.warm = true;  // it will be touched now
  if (!s.guarded && !sc.packed() && g_guarded.load(std::memory_order_relaxed) < guard_budget()) {
    if (::mprotect(s.base, page, PROT_NONE) == 0) {
      s.guarded = true;
      g_guarded.fetch_add(1, std::memory_order_relaxed);
    }
  }
  return s;
}

void StackPool::release(StackSlot s) noexcept {
  SizeClass& sc = size_class(s.class_size);
  if (++sc.warm > kWarmStacks) wants_trim_ = true;
  sc.free.push_back(s);  // cannot throw: grow() reserved room for every slot of the class
}

void StackPool::trim() noexcept {
  wants_trim_ = false;
  for (auto& sc : classes_) {
    if (sc.warm <= kWarmStacks) continue;
    // The most recently freed stacks (the back of the list) stay warm; the warm ones before
    // them are trimmed, in address order so that neighbours go back in one call.
    const std::size_t keep_from = sc.free.size() - std::min(sc.free.size(), kWarmStacks);
    std::vector<char*> starts;
    for (std::size_t i = 0; i < keep_from; ++i) {
      StackSlot& s = sc.free[i];
      if (!s.warm) continue;
      s.warm = false;
      --sc.warm;
      starts.push_back(s.base);
    }
    std::sort(starts.begin(), starts.end());
    const std::size_t page = page_size();
    for (std::size_t i = 0; i < starts.size();) {
      // A run of adjacent slots: from the first usable byte of the first to the top of the last.
      std::size_t j = i + 1;
      while (j < starts.size() && starts[j] == starts[j - 1] + sc.class_size) ++j;
      char* from = starts[i] + page;
      char* to = starts[j - 1] + sc.class_size;
      if (sc.packed()) {
        // Packed slots share pages with their neighbours, which may be in use: only the pages
        // lying wholly inside the run of free slots go back.
        const auto lo = reinterpret_cast<std::uintptr_t>(starts[i]);
        const auto hi = reinterpret_cast<std::uintptr_t>(to);
        from = reinterpret_cast<char*>((lo + page - 1) / page * page);
        to = reinterpret_cast<char*>(hi / page * page);
        if (from < to) ::madvise(from, static_cast<std::size_t>(to - from), MADV_DONTNEED);
        i = j;
        continue;
      }
      // Guard pages inside the run are PROT_NONE mappings; madvise skips nothing it cannot
      // free, but it fails with ENOMEM on holes, so guarded slots are trimmed one by one.
      if (::madvise(from, static_cast<std::size_t>(to - from), MADV_DONTNEED) != 0) {
        for (std::size_t k = i; k < j; ++k)
          ::madvise(starts[k] + page, sc.class_size - page, MADV_DONTNEED);
      }
      i = j;
    }
  }
}

}  // namespace weave::detail
