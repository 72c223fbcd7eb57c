// The slab heap of task states (weave/detail/slab.hpp).

#include "weave/detail/slab.hpp"

#include <sys/mman.h>

#include <mutex>
#include <new>

namespace weave::detail {

namespace {

struct FreeBlock {
  FreeBlock* next;
};

// Remote frees, orphaned slabs and the heap of threads whose own heap is gone: all rare.
std::mutex g_remote_mutex;

}  // namespace

/// The header at the start of every slab; blocks follow at kHeaderBytes.
struct Slab {
  std::atomic<SlabHeap*> owner{nullptr};  // written by the owner (and at its exit, locked)
  Slab* all_prev = nullptr;
  Slab* all_next = nullptr;
  Slab* part_prev = nullptr;
  Slab* part_next = nullptr;
  FreeBlock* free = nullptr;  // owner only
  char* bump = nullptr;       // next never-used block; owner only
  char* end = nullptr;        // one past the last block
  std::uint32_t used = 0;     // blocks out; owner only (locked once orphaned)
  std::uint32_t block = 0;    // block bytes
  std::uint32_t cls = 0;
  bool in_partial = false;
  FreeBlock* remote = nullptr;  // blocks freed by other threads; g_remote_mutex
  std::atomic<bool> has_remote{false};
};

namespace {

constexpr std::size_t kHeaderBytes = 128;
static_assert(sizeof(Slab) <= kHeaderBytes);

Slab* slab_of(void* p) noexcept {
  return reinterpret_cast<Slab*>(reinterpret_cast<std::uintptr_t>(p) &
                                 ~(std::uintptr_t{SlabHeap::kSlabBytes} - 1));
}

// A kSlabBytes region aligned to kSlabBytes: twice the size is mapped and the ends trimmed.
void* map_slab() {
  constexpr std::size_t len = 2 * SlabHeap::kSlabBytes;
  void* m = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<std::uintptr_t>(m);
  const std::uintptr_t aligned =
      (base + SlabHeap::kSlabBytes - 1) & ~(std::uintptr_t{SlabHeap::kSlabBytes} - 1);
  const std::size_t head = aligned - base;
  const std::size_t tail = len - head - SlabHeap::kSlabBytes;
  if (head != 0) ::munmap(m, head);
  if (tail != 0) ::munmap(reinterpret_cast<void*>(aligned + SlabHeap::kSlabBytes), tail);
  return reinterpret_cast<void*>(aligned);
}

void unmap_slab(Slab* s) noexcept {
  s->~Slab();
  ::munmap(s, SlabHeap::kSlabBytes);
}

// The calling thread's heap. The pointer is trivially destructible, so it stays readable (as
// null) after the heap itself was destroyed at thread exit; `tl_heap_gone` tells that case
// from "not created yet".
thread_local SlabHeap* tl_heap = nullptr;
thread_local bool tl_heap_gone = false;

struct ThreadHeap {
  SlabHeap heap;
  ThreadHeap() noexcept { tl_heap = &heap; }
  ~ThreadHeap() {
    tl_heap = nullptr;
    tl_heap_gone = true;
  }
};

// Blocks asked for during thread exit, after the thread's heap went: a shared heap, locked.
std::mutex g_late_mutex;
SlabHeap& late_heap() {
  static SlabHeap* heap = new SlabHeap;  // never destroyed: blocks may be freed at any time
  return *heap;
}

}  // namespace

SlabHeap* SlabHeap::current() noexcept {
  if (tl_heap == nullptr && !tl_heap_gone) {
    thread_local ThreadHeap owner;
    (void)owner;
  }
  return tl_heap;
}

std::size_t SlabHeap::blocks_in_use() const noexcept {
  std::size_t n = 0;
  for (Slab* s = all_; s != nullptr; s = s->all_next) n += s->used;
  return n;
}

namespace {
// A block of `s`: a freed one first, else the next never-used one; null if `s` is full.
void* take_block(Slab* s) noexcept {
  if (FreeBlock* b = s->free) {
    s->free = b->next;
    ++s->used;
    return b;
  }
  if (s->bump == s->end) return nullptr;
  void* p = s->bump;
  s->bump += s->block;
  ++s->used;
  return p;
}
}  // namespace

void* SlabHeap::allocate(std::size_t size) {
  const std::size_t cls = (size - 1) / kClassBytes;
  if (Slab* s = current_[cls])
    if (void* p = take_block(s)) return p;
  return refill(cls);
}

// The current slab of `cls` is used up (or there is none): take back remote frees, then a
// partial slab, then a new one.
void* SlabHeap::refill(std::size_t cls) {
  if (remote_pending_.load(std::memory_order_acquire) && take_remote()) {
    if (Slab* s = current_[cls])
      if (void* p = take_block(s)) return p;
  }
  Slab* s = partial_[cls];
  if (s != nullptr) {
    unlink_partial(s);
  } else {
    s = new_slab(cls);
  }
  current_[cls] = s;
  return take_block(s);  // a partial slab has a free block, a new one is empty
}

Slab* SlabHeap::new_slab(std::size_t cls) {
  void* mem;
  if (spare_ != nullptr) {
    mem = spare_;
    spare_->~Slab();
    spare_ = nullptr;
  } else {
    mem = map_slab();
    ++slabs_;
  }
  // The first slab of a class stays on small pages; the next ones ask for huge pages. Advice
  // only: where transparent huge pages are off, nothing changes.
  if (per_class_[cls] >= 1) ::madvise(mem, kSlabBytes, MADV_HUGEPAGE);
  auto* s = ::new (mem) Slab;
  s->owner.store(this, std::memory_order_relaxed);
  s->cls = static_cast<std::uint32_t>(cls);
  s->block = static_cast<std::uint32_t>((cls + 1) * kClassBytes);
  s->bump = static_cast<char*>(mem) + kHeaderBytes;
  s->end = s->bump + (kSlabBytes - kHeaderBytes) / s->block * s->block;
  s->all_next = all_;
  if (all_ != nullptr) all_->all_prev = s;
  all_ = s;
  ++per_class_[cls];
  return s;
}

void SlabHeap::link_partial(Slab* s) noexcept {
  s->in_partial = true;
  s->part_prev = nullptr;
  s->part_next = partial_[s->cls];
  if (s->part_next != nullptr) s->part_next->part_prev = s;
  partial_[s->cls] = s;
}

void SlabHeap::unlink_partial(Slab* s) noexcept {
  if (s->part_prev != nullptr)
    s->part_prev->part_next = s->part_next;
  else
    partial_[s->cls] = s->part_next;
  if (s->part_next != nullptr) s->part_next->part_prev = s->part_prev;
  s->part_prev = s->part_next = nullptr;
  s->in_partial = false;
}

// `s` has no block out and is not a current slab: keep it as the spare or give it back.
void SlabHeap::release(Slab* s) noexcept {
  if (s->in_partial) unlink_partial(s);
  if (s->all_prev != nullptr)
    s->all_prev->all_next = s->all_next;
  else
    all_ = s->all_next;
  if (s->all_next != nullptr) s->all_next->all_prev = s->all_prev;
  --per_class_[s->cls];
  if (spare_ == nullptr) {
    spare_ = s;
  } else {
    unmap_slab(s);
    --slabs_;
  }
}

void SlabHeap::free_local(Slab* s, void* p) noexcept {
  auto* b = static_cast<FreeBlock*>(p);
  b->next = s->free;
  s->free = b;
  --s->used;
  if (s == current_[s->cls]) return;
  if (s->used == 0) {
    release(s);
  } else if (!s->in_partial) {
    link_partial(s);
  }
}

// Moves every remote list of this heap's slabs to their free lists. True if any block came.
bool SlabHeap::take_remote() noexcept {
  bool any = false;
  {
    std::lock_guard<std::mutex> lock(g_remote_mutex);
    remote_pending_.store(false, std::memory_order_relaxed);
    for (Slab* s = all_; s != nullptr; s = s->all_next) {
      if (!s->has_remote.load(std::memory_order_relaxed)) continue;
      while (FreeBlock* b = s->remote) {
        s->remote = b->next;
        b->next = s->free;
        s->free = b;
        --s->used;
        any = true;
      }
      s->has_remote.store(false, std::memory_order_relaxed);
    }
  }
  for (Slab *s = all_, *next = nullptr; s != nullptr; s = next) {
    next = s->all_next;
    if (s == current_[s->cls] || s->free == nullptr) continue;
    if (s->used == 0) {
      release(s);
    } else if (!s->in_partial) {
      link_partial(s);
    }
  }
  return any;
}

void SlabHeap::deallocate(void* p, std::size_t) noexcept {
  Slab* s = slab_of(p);
  SlabHeap* mine = tl_heap;
  if (mine != nullptr && s->owner.load(std::memory_order_relaxed) == mine) {
    mine->free_local(s, p);
    return;
  }
  // Another thread's slab, an orphan, or a block of the late heap.
  if (s->owner.load(std::memory_order_relaxed) == &late_heap()) {
    std::lock_guard<std::mutex> lock(g_late_mutex);
    late_heap().free_local(s, p);
    return;
  }
  std::unique_lock<std::mutex> lock(g_remote_mutex);
  SlabHeap* owner = s->owner.load(std::memory_order_relaxed);
  if (owner == nullptr) {
    if (--s->used == 0) {
      lock.unlock();
      unmap_slab(s);
    }
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = s->remote;
  s->remote = b;
  s->has_remote.store(true, std::memory_order_relaxed);
  owner->remote_pending_.store(true, std::memory_order_release);
}

SlabHeap::~SlabHeap() {
  if (spare_ != nullptr) {
    unmap_slab(spare_);
    spare_ = nullptr;
  }
  std::lock_guard<std::mutex> lock(g_remote_mutex);
  for (Slab *s = all_, *next = nullptr; s != nullptr; s = next) {
    next = s->all_next;
    while (FreeBlock* b = s->remote) {
      s->remote = b->next;
      --s->used;
    }
    s->has_remote.store(false, std::memory_order_relaxed);
    if (s->used == 0) {
      unmap_slab(s);
    } else {
      s->owner.store(nullptr, std::memory_order_relaxed);  // the last free unmaps it
    }
  }
  all_ = nullptr;
}

void* SlabHeap::allocate_block(std::size_t size) {
  if (SlabHeap* h = current()) return h->allocate(size);
  std::lock_guard<std::mutex> lock(g_late_mutex);
  return late_heap().allocate(size);
}

}  // namespace weave::detail
