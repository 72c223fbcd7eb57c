// The slab heap of task states: distinct aligned blocks, reuse, memory given back, frees from
// other threads, slabs orphaned by an exiting thread, and allocations during thread exit.

#include "weave/detail/slab.hpp"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "weave/weave.hpp"

namespace {

using weave::detail::SlabHeap;

constexpr std::size_t kBlock = 320;
// Blocks of kBlock in one slab, give or take its header.
constexpr std::size_t kPerSlab = SlabHeap::kSlabBytes / kBlock;

bool mapped(const void* p) {
  // msync fails with ENOMEM on an address that is not mapped.
  void* page = reinterpret_cast<void*>(reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{4095});
  return ::msync(page, 4096, MS_ASYNC) == 0;
}

// Runs `fn` on a thread of its own, so that it starts from a fresh heap.
template <class F>
void on_new_thread(F fn) {
  std::thread t(fn);
  t.join();
}

TEST(Slab, BlocksAreDistinctAlignedAndHoldTheirBytes) {
  on_new_thread([] {
    SlabHeap* h = SlabHeap::current();
    ASSERT_NE(h, nullptr);
    std::vector<std::pair<void*, std::size_t>> blocks;
    std::set<std::uintptr_t> seen;
    for (std::size_t i = 0; i < 5000; ++i) {
      const std::size_t size = 1 + (i * 37) % SlabHeap::kMaxBlock;
      void* p = h->allocate(size);
      ASSERT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
      std::memset(p, static_cast<int>(i & 0xff), size);
      ASSERT_TRUE(seen.insert(reinterpret_cast<std::uintptr_t>(p)).second);
      blocks.emplace_back(p, size);
    }
    EXPECT_EQ(h->blocks_in_use(), blocks.size());
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      auto* bytes = static_cast<unsigned char*>(blocks[i].first);
      for (std::size_t k = 0; k < blocks[i].second; ++k)
        ASSERT_EQ(bytes[k], i & 0xff) << "block " << i << " byte " << k;
    }
    for (auto [p, size] : blocks) SlabHeap::deallocate(p, size);
    EXPECT_EQ(h->blocks_in_use(), 0u);
  });
}

TEST(Slab, AFreedBlockIsReusedByTheNextOfItsSize) {
  on_new_thread([] {
    SlabHeap* h = SlabHeap::current();
    void* a = h->allocate(300);
    void* b = h->allocate(300);
    SlabHeap::deallocate(a, 300);
    EXPECT_EQ(h->allocate(310), a);  // same 64-byte class
    void* c = h->allocate(100);      // another class: another slab
    EXPECT_NE(c, a);
    EXPECT_GE(h->slab_count(), 2u);
    SlabHeap::deallocate(a, 310);
    SlabHeap::deallocate(b, 300);
    SlabHeap::deallocate(c, 100);
  });
}

TEST(Slab, EmptySlabsGoBackToTheSystemKeepingOneSpare) {
  on_new_thread([] {
    SlabHeap* h = SlabHeap::current();
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < 3 * kPerSlab; ++i) blocks.push_back(h->allocate(kBlock));
    EXPECT_GE(h->slab_count(), 3u);
    EXPECT_LE(h->slab_count(), 4u);
    const void* first = blocks.front();
    const void* last = blocks.back();
    // Free in allocation order: the first slabs empty while they are not current.
    for (void* p : blocks) SlabHeap::deallocate(p, kBlock);
    EXPECT_EQ(h->blocks_in_use(), 0u);
    // The current slab stays, one emptied slab is kept as the spare, the others are unmapped.
    EXPECT_EQ(h->slab_count(), 2u);
    EXPECT_TRUE(mapped(last));
    (void)first;
    // And the memory is still good for new blocks.
    void* again = h->allocate(kBlock);
    std::memset(again, 1, kBlock);
    SlabHeap::deallocate(again, kBlock);
  });
}

TEST(Slab, PartiallyFreedSlabsAreReusedBeforeNewOnes) {
  on_new_thread([] {
    SlabHeap* h = SlabHeap::current();
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < 2 * kPerSlab; ++i) blocks.push_back(h->allocate(kBlock));
    const std::size_t slabs = h->slab_count();
    // Free every other block of the first half (the first slab, no longer current).
    for (std::size_t i = 0; i < kPerSlab / 2; i += 2) SlabHeap::deallocate(blocks[i], kBlock);
    // Fill what is left of the current slab, and as many again as there are holes: the holes
    // are used before any new slab is mapped.
    std::vector<void*> more;
    while (h->slab_count() == slabs && more.size() < kPerSlab) more.push_back(h->allocate(kBlock));
    EXPECT_GE(more.size(), kPerSlab / 4) << "the holes of the first slab were not reused";
    for (std::size_t i = 1; i < kPerSlab / 2; i += 2) SlabHeap::deallocate(blocks[i], kBlock);
    for (std::size_t i = kPerSlab / 2; i < blocks.size(); ++i)
      SlabHeap::deallocate(blocks[i], kBlock);
    for (void* p : more) SlabHeap::deallocate(p, kBlock);
    EXPECT_EQ(h->blocks_in_use(), 0u);
    EXPECT_LE(h->slab_count(), 2u);
  });
}

TEST(Slab, BlocksFreedOnAnotherThreadAreTakenBackByTheirOwner) {
  on_new_thread([] {
    SlabHeap* h = SlabHeap::current();
    std::vector<void*> blocks;
    for (std::size_t i = 0; i < 2 * kPerSlab; ++i) blocks.push_back(h->allocate(kBlock));
    const std::size_t slabs = h->slab_count();
    std::thread other([&] {
      for (void* p : blocks) SlabHeap::deallocate(p, kBlock);
    });
    other.join();
    // Not counted until the owner looks: the owner looks when it needs a slab.
    EXPECT_EQ(h->blocks_in_use(), blocks.size());
    std::vector<void*> again;
    for (std::size_t i = 0; i < 2 * kPerSlab; ++i) again.push_back(h->allocate(kBlock));
    EXPECT_LE(h->slab_count(), slabs + 1);
    EXPECT_EQ(h->blocks_in_use(), again.size());
    for (void* p : again) SlabHeap::deallocate(p, kBlock);
    EXPECT_EQ(h->blocks_in_use(), 0u);
  });
}

TEST(Slab, ASlabOrphanedByItsThreadIsUnmappedAtItsLastFree) {
  std::vector<void*> blocks;
  on_new_thread([&] {
    SlabHeap* h = SlabHeap::current();
    for (int i = 0; i < 100; ++i) {
      void* p = h->allocate(kBlock);
      std::memset(p, 7, kBlock);
      blocks.push_back(p);
    }
  });
  // The thread is gone; its blocks are still good.
  for (void* p : blocks) {
    ASSERT_EQ(static_cast<unsigned char*>(p)[kBlock - 1], 7);
    ASSERT_TRUE(mapped(p));
  }
  for (std::size_t i = 0; i + 1 < blocks.size(); ++i) SlabHeap::deallocate(blocks[i], kBlock);
  EXPECT_TRUE(mapped(blocks.back()));
  SlabHeap::deallocate(blocks.back(), kBlock);
  EXPECT_FALSE(mapped(blocks.back()));
}

// Constructed before the thread's heap, so destroyed after it: allocates in its destructor.
std::atomic<int> g_late_result{0};
struct LateUser {
  ~LateUser() {
    if (SlabHeap::current() != nullptr) {
      g_late_result = -1;  // the heap should be gone by now
      return;
    }
    void* p = SlabHeap::allocate_block(200);
    std::memset(p, 3, 200);
    const bool ok = static_cast<unsigned char*>(p)[199] == 3;
    SlabHeap::deallocate(p, 200);
    g_late_result = ok ? 1 : -2;
  }
};

TEST(Slab, BlocksCanBeHadDuringThreadExitAfterTheHeapIsGone) {
  g_late_result = 0;
  on_new_thread([] {
    thread_local LateUser late;
    (void)&late;
    void* p = SlabHeap::allocate_block(200);  // creates the heap after `late`
    SlabHeap::deallocate(p, 200);
  });
  EXPECT_EQ(g_late_result.load(), 1);
}

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if !defined(__SANITIZE_ADDRESS__) && !__has_feature(address_sanitizer)
// Task states come from the slab heap (under ASan they are plain heap blocks, for its checks).
TEST(Slab, TaskStatesComeFromTheSlabHeapAndAllGoBack) {
  on_new_thread([] {
    const std::size_t before = SlabHeap::current()->blocks_in_use();
    const long n = 3 * static_cast<long>(kPerSlab);
    const long long sum = weave::run([n, before] {
      std::vector<weave::Task<long>> tasks;
      for (long i = 0; i < n; ++i) tasks.push_back(weave::spawn([i] { return i; }));
      EXPECT_GE(SlabHeap::current()->blocks_in_use(), before + static_cast<std::size_t>(n));
      long long s = 0;
      for (long v : weave::gather(tasks)) s += v;
      return s;
    });
    EXPECT_EQ(sum, static_cast<long long>(n) * (n - 1) / 2);
    EXPECT_EQ(SlabHeap::current()->blocks_in_use(), before);
  });
}
#endif

}  // namespace
