// Fiber stacks: sizes, overflow detection, many live fibers, reuse.

#include "weave/detail/stack.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "weave/clock.hpp"
#include "weave/future.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define WEAVE_TEST_TSAN 1
#else
#define WEAVE_TEST_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define WEAVE_TEST_ASAN 1
#else
#define WEAVE_TEST_ASAN 0
#endif

namespace {

using namespace std::chrono_literals;
using weave::detail::StackPool;

#if WEAVE_TEST_TSAN
// TSan maps about two regions of its own per fiber (a fiber is a thread to TSan); with weave's
// two per guarded stack, a process reaches vm.max_map_count (65530) near 15,000 live fibers and
// TSan dies with "Failed to mmap", before the guard budget (a quarter of vm.max_map_count) is
// even used up. So under TSan these tests run with fewer fibers.
constexpr int kManyFibers = 12'000;
constexpr int kBurstFibers = 12'000;
#elif WEAVE_TEST_ASAN
// ASan reserves shadow memory per region a fiber touches, in mappings of its own: with 200,000
// fibers (and fake stacks under detect_stack_use_after_return) it exhausts vm.max_map_count.
constexpr int kManyFibers = 20'000;
constexpr int kBurstFibers = 30'000;  // ASan frames are larger: warm stacks keep two pages
#else
constexpr int kManyFibers = 200'000;
constexpr int kBurstFibers = 50'000;
#endif

constexpr std::size_t KiB = 1024;
constexpr std::size_t MiB = 1024 * KiB;

// The usable bounds of the running fiber's stack.
struct Bounds {
  const char* bottom;  // lowest usable byte
  const char* top;     // one past the highest
};
Bounds current_stack() {
  const weave::detail::StackSlot& s = weave::current_task().state()->stack;
  return {s.bottom(), s.top()};
}

// Fills a local array of N bytes (so every page of it is touched) and reports where it lies.
template <std::size_t N>
__attribute__((noinline)) unsigned touch_local_array(const char** lowest, const char** highest) {
  volatile char buf[N];
  for (std::size_t i = 0; i < N; i += 64) buf[i] = static_cast<char>(i);
  buf[N - 1] = 1;
  unsigned sum = 0;
  for (std::size_t i = 0; i < N; i += 4096) sum += static_cast<unsigned char>(buf[i]);
  *lowest = const_cast<const char*>(&buf[0]);
  *highest = const_cast<const char*>(&buf[N - 1]);
  return sum + buf[N - 1];
}

// The process's mapped address space, in pages (the first field of /proc/self/statm).
std::size_t virtual_pages() {
  unsigned long pages = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  return pages;
}

weave::Loop::Options manual_time(weave::ManualClock& clock) {
  weave::Loop::Options options;
  options.clock = &clock;
  return options;
}

// ---- Sizes -----------------------------------------------------------------------------------

TEST(Stack, DefaultStackHasAtLeastTheLoopsDefaultSize) {
  weave::Loop loop;
  std::size_t usable = 0;
  loop.spawn([&] {
        Bounds b = current_stack();
        usable = static_cast<std::size_t>(b.top - b.bottom);
      })
      .get();
  EXPECT_GE(usable, 256 * KiB);
  EXPECT_LT(usable, 256 * KiB + 64 * KiB);
}

TEST(Stack, LoopOptionsSetTheDefaultStackSize) {
  weave::Loop::Options options;
  options.stack_size = 64 * KiB;
  weave::Loop loop(options);
  std::size_t usable = 0;
  loop.spawn([&] {
        Bounds b = current_stack();
        usable = static_cast<std::size_t>(b.top - b.bottom);
      })
      .get();
  EXPECT_GE(usable, 64 * KiB);
  EXPECT_LT(usable, 128 * KiB);
}

TEST(Stack, FiberCanUseMostOfItsDefaultStack) {
  weave::Loop loop;
  const char *low = nullptr, *high = nullptr;
  Bounds b{};
  const char* entry = nullptr;
  loop.spawn([&] {
        char marker = 0;
        entry = &marker;
        b = current_stack();
        touch_local_array<200 * KiB>(&low, &high);
      })
      .get();
  ASSERT_NE(low, nullptr);
  // The array lies on the fiber's own stack, and the fiber used well over 200 KiB of its 256.
  EXPECT_GE(low, b.bottom);
  EXPECT_LT(high, b.top);
  EXPECT_GE(b.top - low, static_cast<std::ptrdiff_t>(200 * KiB));
  // What the runtime itself needs under the fiber's function is small. (ASan's
  // detect_stack_use_after_return moves small locals to its heap "fake stack": then `entry` is
  // not on the fiber's stack and says nothing about it.)
  if (entry >= b.bottom && entry < b.top)
    EXPECT_LT(b.top - entry, static_cast<std::ptrdiff_t>(16 * KiB));
  else
    EXPECT_TRUE(WEAVE_TEST_ASAN) << "a local of the fiber's function is not on its stack";
}

TEST(Stack, SpawnOptionsStackSizeGivesALargerStack) {
  weave::Loop loop;
  std::size_t usable = 0;
  const char *low = nullptr, *high = nullptr;
  Bounds b{};
  loop.spawn(weave::SpawnOptions{.name = "big", .stack_size = 2 * MiB},
             [&] {
               b = current_stack();
               usable = static_cast<std::size_t>(b.top - b.bottom);
               // Only use the big array if the stack really is big: otherwise this would crash.
               if (usable >= 2 * MiB) touch_local_array<1536 * KiB>(&low, &high);
             })
      .get();
  ASSERT_GE(usable, 2 * MiB);
  EXPECT_GE(low, b.bottom);
  EXPECT_LT(high, b.top);
}

TEST(Stack, SpawnOptionsStackSizeGivesASmallerStack) {
  weave::Loop loop;
  std::size_t small = 0, normal = 0;
  auto a = loop.spawn(weave::SpawnOptions{.name = "small", .stack_size = 32 * KiB}, [&] {
    Bounds b = current_stack();
    small = static_cast<std::size_t>(b.top - b.bottom);
  });
  auto c = loop.spawn([&] {
    Bounds b = current_stack();
    normal = static_cast<std::size_t>(b.top - b.bottom);
  });
  loop.run();
  EXPECT_GE(small, 32 * KiB);
  EXPECT_LT(small, 64 * KiB);
  EXPECT_GE(normal, 256 * KiB);
}

// ---- When no stack can be had ------------------------------------------------------------------
//
// A pool serves a bounded number of distinct stack sizes (32); a stack can also be refused by
// mmap. Either way the fiber cannot start. Whatever way the failure is reported (spawn throws,
// run() throws, or the task ends with the error), the task must not be lost: a task that is
// counted live but will never run keeps run() from ever returning.

constexpr int kMoreSizesThanAPoolServes = 40;

TEST(Stack, FiberWhoseStackCannotBeHadIsNotLost) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  const std::size_t page = StackPool::page_size();
  std::vector<weave::Task<int>> tasks;
  int spawn_failures = 0;
  for (int i = 1; i <= kMoreSizesThanAPoolServes; ++i) {
    try {
      tasks.push_back(loop.spawn(
          weave::SpawnOptions{.name = "size-" + std::to_string(i), .stack_size = (16 + i) * page},
          [i] { return i; }));
    } catch (const std::exception&) {
      ++spawn_failures;
    }
  }
  // Watchdog: with a lost fiber, run() would wait forever for it.
  loop.call_later(1h, [&] { loop.stop(); });
  int run_failures = 0;
  for (int attempt = 0; attempt <= kMoreSizesThanAPoolServes; ++attempt) {
    try {
      loop.run();
      break;
    } catch (const std::exception&) {
      ++run_failures;
    }
  }
  int done = 0;
  for (auto& t : tasks) done += t.done();
  EXPECT_EQ(done, static_cast<int>(tasks.size()))
      << "tasks neither started nor failed (spawn threw " << spawn_failures
      << " times, run() threw " << run_failures << " times)";
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_TRUE(loop.all_tasks().empty());
  loop.set_exception_handler([](const weave::ErrorContext&) {});  // quiet close()
}

TEST(Stack, EagerSpawnThatCannotGetAStackLeavesNoGhostTask) {
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  const std::size_t page = StackPool::page_size();
  // Use up the pool's size classes (the default size is one of them).
  for (int i = 1; i < 32; ++i)
    loop.spawn(weave::SpawnOptions{.name = "filler", .stack_size = (16 + i) * page}, [] {});
  loop.run();
  bool spawn_threw = false;
  std::size_t live_after = 0, tasks_after = 0;
  auto parent = loop.spawn([&] {
    try {
      auto child = weave::spawn(
          weave::SpawnOptions{.name = "ghost", .stack_size = 200 * page, .eager = true}, [] {});
      child.join();
    } catch (const std::exception&) {
      spawn_threw = true;
    }
    live_after = loop.live_fibers();
    tasks_after = loop.all_tasks().size();
  });
  loop.call_later(1h, [&] { loop.stop(); });  // watchdog, as above
  loop.run();
  ASSERT_TRUE(parent.done());
  if (spawn_threw) {
    EXPECT_EQ(live_after, 1u) << "a child whose spawn threw is still counted as a live fiber";
    EXPECT_EQ(tasks_after, 1u);
  }
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_TRUE(loop.all_tasks().empty());
  loop.set_exception_handler([](const weave::ErrorContext&) {});  // quiet close()
}

// ---- Overflow --------------------------------------------------------------------------------

volatile bool g_never = false;

__attribute__((noinline)) int recurse_forever(int depth) {
  volatile char frame[256];
  frame[0] = static_cast<char>(depth);
  if (g_never) return frame[0];
  return recurse_forever(depth + 1) + frame[0];
}

void overflow_in_named_fiber() {
  weave::Loop loop;
  loop.spawn(weave::SpawnOptions{.name = "deep-recursion", .stack_size = 64 * KiB},
             [] { return recurse_forever(0); });
  loop.run();
}

TEST(StackDeathTest, OverflowKillsTheProcessNamingTheTask) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(overflow_in_named_fiber(), "stack overflow in task 'deep-recursion'");
}

void overflow_in_unnamed_fiber() {
  weave::Loop loop;
  auto t = loop.spawn([] { return recurse_forever(0); });
  std::fprintf(stderr, "expect task-%llu\n", static_cast<unsigned long long>(t.id()));
  loop.run();
}

TEST(StackDeathTest, OverflowOfAnUnnamedTaskNamesItByItsId) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // The first task of a fresh loop has id 1.
  EXPECT_DEATH(overflow_in_unnamed_fiber(), "stack overflow in task 'task-1'");
}

void fault_elsewhere_in_fiber() {
  weave::Loop loop;
  void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  loop.spawn(weave::SpawnOptions{.name = "bad-pointer"},
             [page] { *static_cast<volatile int*>(page) = 1; });
  loop.run();
}

TEST(StackDeathTest, OtherFaultInAFiberIsNotReportedAsAStackOverflow) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(fault_elsewhere_in_fiber(), testing::Not(testing::HasSubstr("stack overflow")));
}

// ---- Many fibers -------------------------------------------------------------------------------

// More fibers than vm.max_map_count allows guarded stacks for: the stacks beyond the guard
// budget come without a guard page instead of failing.
TEST(Stack, TwoHundredThousandLiveFibersBlockedAtOnce) {
  constexpr int kFibers = kManyFibers;
  weave::ManualClock clock;
  weave::Loop loop(manual_time(clock));
  std::vector<weave::Promise<int>> promises(kFibers / 2);
  int started = 0;
  long long finished_sum = 0;
  int finished = 0;
  std::size_t live_when_all_blocked = 0;
  std::size_t guarded_when_all_blocked = 0;
  auto main = loop.spawn([&] {
    for (int i = 0; i < kFibers; ++i) {
      if (i % 2 == 0) {
        weave::spawn([&, f = promises[i / 2].get_future()] {
          ++started;
          finished_sum += f.get();
          ++finished;
        });
      } else {
        weave::spawn([&] {
          ++started;
          weave::this_fiber::sleep_for(24h);
          finished_sum += 1;
          ++finished;
        });
      }
    }
    weave::this_fiber::yield();  // every child runs once and blocks
    live_when_all_blocked = loop.live_fibers();
    guarded_when_all_blocked = StackPool::guarded_stacks();
    for (auto& p : promises) p.set_value(1);
  });
  loop.run();
  EXPECT_EQ(started, kFibers);
  EXPECT_EQ(live_when_all_blocked, static_cast<std::size_t>(kFibers) + 1);
  EXPECT_LE(guarded_when_all_blocked, StackPool::guard_budget());
  EXPECT_EQ(finished, kFibers);
  EXPECT_EQ(finished_sum, kFibers);
  EXPECT_EQ(loop.live_fibers(), 0u);
  EXPECT_GE(clock.now().time_since_epoch(), std::chrono::nanoseconds(24h));
}

// Resident pages in the given stacks (mincore: counts only the stacks themselves, not the heap
// or a sanitizer's bookkeeping).
std::size_t resident_pages(const std::vector<Bounds>& stacks) {
  const std::size_t page = StackPool::page_size();
  std::size_t resident = 0;
  std::vector<unsigned char> vec;
  for (const Bounds& b : stacks) {
    const std::size_t bytes = static_cast<std::size_t>(b.top - b.bottom);
    vec.assign(bytes / page, 0);
    if (::mincore(const_cast<char*>(b.bottom), bytes, vec.data()) != 0) continue;
    for (unsigned char v : vec) resident += v & 1;
  }
  return resident;
}

// A burst ends: the pool keeps a bounded number of warm stacks and gives the pages of the rest
// back to the kernel, at the latest when the loop next goes to sleep (StackPool's contract).
TEST(Stack, MemoryOfABurstOfFibersIsReturnedOnceTheLoopSleeps) {
  constexpr int kFibers = kBurstFibers;
  static_assert(kFibers > 10 * StackPool::kWarmStacks);
  weave::Loop loop;  // real time: the loop must really go to sleep, for a millisecond
  std::vector<Bounds> stacks;
  stacks.reserve(kFibers);
  std::size_t at_peak = 0;
  auto main = loop.spawn([&] {
    std::vector<weave::Promise<void>> promises(kFibers);
    for (auto& p : promises) {
      weave::spawn([&, f = p.get_future()] {
        stacks.push_back(current_stack());
        f.get();
      });
    }
    weave::this_fiber::yield();  // all of them run and block
    at_peak = resident_pages(stacks);
    for (auto& p : promises) p.set_value();
    weave::this_fiber::yield();  // they all end
    // Nothing is ready now: the loop goes to sleep for a millisecond. (Retried a few times, in
    // case a descheduled test process finds the millisecond over before the loop got to sleep.)
    for (int i = 0; i < 10 && resident_pages(stacks) >= at_peak / 10; ++i)
      weave::this_fiber::sleep_for(1ms);
  });
  loop.run();
  ASSERT_EQ(stacks.size(), static_cast<std::size_t>(kFibers));
  ASSERT_GE(at_peak, static_cast<std::size_t>(kFibers)) << "every fiber touched its stack";
  const std::size_t after = resident_pages(stacks);
  EXPECT_LT(after, at_peak / 10) << "stack pages resident: " << at_peak << " at the peak, " << after
                                 << " after the burst";
}

TEST(Stack, StacksAreReusedWhenFibersRunOneAfterAnother) {
  constexpr int kFibers = 100'000;
  weave::Loop loop;
  std::set<const char*> stack_tops;
  const std::size_t guarded_before = StackPool::guarded_stacks();
  std::size_t before = 0, after = 0;
  auto main = loop.spawn([&] {
    // Warm up: the first child's stack comes from a fresh slab.
    weave::spawn([] {}).join();
    before = virtual_pages();
    for (int i = 0; i < kFibers; ++i) {
      weave::spawn([&] { stack_tops.insert(current_stack().top); }).join();
    }
    after = virtual_pages();
  });
  main.get();
  // One child alive at a time: one stack (beside the parent's) serves them all.
  EXPECT_LE(stack_tops.size(), 2u);
  EXPECT_LE(StackPool::guarded_stacks() - guarded_before, 4u);
  // Without reuse, 100,000 stacks of 256 KiB would map 25 GiB of address space. (Resident
  // memory is not checked: under TSan it grows with TSan's own per-fiber bookkeeping.)
  const std::size_t page = StackPool::page_size();
  ASSERT_GT(before, 0u);
  EXPECT_LT((after > before ? after - before : 0) * page, 1024 * MiB);
}

}  // namespace
