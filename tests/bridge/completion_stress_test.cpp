// The race between a fiber that is about to suspend and a completion on another thread (see the
// top of bridge/src/completion.cpp), under load: millions of completions from two threads, then
// completions racing cancellations. Run under TSan and ASan too (with smaller counts).
//
// Counts: plain build 2,000,000 completions (1,000,000 per thread) and 200,000 racing a
// timeout; ASan 200,000 / 40,000; TSan 100,000 / 20,000.

#include "weave/bridge/completion.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "virtual_time.hpp"
#include "weave/bridge/call.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

#if defined(__SANITIZE_THREAD__)
#define WEAVE_TEST_TSAN 1
#elif defined(__SANITIZE_ADDRESS__)
#define WEAVE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEAVE_TEST_TSAN 1
#elif __has_feature(address_sanitizer)
#define WEAVE_TEST_ASAN 1
#endif
#endif

namespace {

using namespace std::chrono_literals;
namespace bridge = weave::bridge;
using IntDone = bridge::Completion<void(int)>;

#if defined(WEAVE_TEST_TSAN)
constexpr int kCompletions = 100'000;
constexpr int kRacing = 20'000;
#elif defined(WEAVE_TEST_ASAN)
constexpr int kCompletions = 200'000;
constexpr int kRacing = 40'000;
#else
constexpr int kCompletions = 2'000'000;
constexpr int kRacing = 200'000;
#endif

// A bounded single-producer (the loop's thread) single-consumer (a worker) ring of handles.
class Ring {
 public:
  struct Item {
    IntDone done;
    int value = 0;
  };
  bool try_push(IntDone& d, int value) {
    const auto t = tail_.load(std::memory_order_relaxed);
    if (t - head_.load(std::memory_order_acquire) == kSize) return false;
    slots_[t % kSize] = Item{std::move(d), value};
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }
  bool try_pop(Item& out) {
    const auto h = head_.load(std::memory_order_relaxed);
    if (h == tail_.load(std::memory_order_acquire)) return false;
    out = std::move(slots_[h % kSize]);
    head_.store(h + 1, std::memory_order_release);
    return true;
  }

 private:
  static constexpr std::uint64_t kSize = 512;
  std::array<Item, kSize> slots_;
  alignas(64) std::atomic<std::uint64_t> head_{0};
  alignas(64) std::atomic<std::uint64_t> tail_{0};
};

// A thread that completes every handle it is given with value + 1, as soon as it gets it (so
// that many completions land while their fiber is still on its way to suspending). With
// `hold`, it keeps some handles for a few rounds first, so that they arrive late.
class Completer {
 public:
  explicit Completer(bool hold = false)
      : thread_([this, hold] {
          std::vector<Ring::Item> held;
          Ring::Item item;
          unsigned idle = 0, n = 0;
          while (!stop_.load(std::memory_order_acquire) || !held.empty()) {
            if (ring.try_pop(item)) {
              idle = 0;
              if (hold && (++n % 3) == 0) {
                held.push_back(std::move(item));
              } else {
                item.done(item.value + 1);
                item.done = {};
              }
              if (held.size() > 8 || (!held.empty() && (n % 5) == 0)) {
                held.front().done(held.front().value + 1);
                held.erase(held.begin());
              }
            } else if (!held.empty()) {
              held.back().done(held.back().value + 1);
              held.pop_back();
            } else if (++idle > 64) {
              std::this_thread::yield();
            }
          }
        }) {}
  ~Completer() {
    stop_.store(true, std::memory_order_release);
    thread_.join();
  }
  Ring ring;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Hands `d` to `c`, yielding while its ring is full.
void hand_over(Completer& c, IntDone& d, int value) {
  while (!c.ring.try_push(d, value)) weave::this_fiber::yield();
}

TEST(CompletionStress, MillionsOfCompletionsFromTwoThreadsEachResumeTheirOwnFiber) {
  constexpr int kFibers = 256;
  std::atomic<int> wrong{0};
  int done_calls = 0;
  {
    Completer a, b;
    weave::Loop loop;
    std::vector<weave::Task<void>> fibers;
    for (int f = 0; f < kFibers; ++f) {
      fibers.push_back(loop.spawn([&, f] {
        Completer& c = (f % 2) ? a : b;
        for (int i = f; i < kCompletions; i += kFibers) {
          int v = bridge::call<void(int)>([&](IntDone d) { hand_over(c, d, i); });
          if (v != i + 1) ++wrong;
          ++done_calls;
        }
      }));
    }
    loop.run();
    for (auto& t : fibers) EXPECT_TRUE(t.done() && !t.cancelled());
  }
  EXPECT_EQ(done_calls, kCompletions);
  EXPECT_EQ(wrong.load(), 0);
}

TEST(CompletionStress, CompletionsFromTwoThreadsRacingTimeoutsNeverResumeTheWrongWait) {
  // Virtual time with autojump: whenever every fiber is parked and no wake-up has been posted
  // yet, the clock jumps and the timeouts fire, while the completers are still completing. Each
  // wait either gets its own value or times out; a late completion must be a no-op, and must not
  // wake the fiber out of its next wait (which would show as a wrong value or a crash).
  //
  // One wait in eight has no timeout: it always gets its value, and it keeps the loop from
  // outrunning the completers for good. Without it, a loaded machine could starve the completer
  // threads long enough that every timed wait timed out (seen: 0 of 200,000 got a value, with
  // two CPU hogs beside two copies of this test on two cores), and the test would say nothing
  // about values arriving at all. How many timed waits win the race is the machine's business;
  // that some lose it (late completions) is what this test needs.
  constexpr int kFibers = 16;
  std::atomic<int> wrong{0};
  int got = 0, timed_out = 0, untimed = 0;
  {
    Completer a(/*hold=*/true), b(/*hold=*/true);
    weave::ManualClock clock;
    weave::Loop loop(weave_test::manual_time(clock));
    for (int f = 0; f < kFibers; ++f) {
      loop.spawn([&, f] {
        Completer& c = (f % 2) ? a : b;
        for (int i = f; i < kRacing; i += kFibers) {
          if ((i / kFibers) % 8 == 7) {
            int v = bridge::call<void(int)>([&](IntDone d) { hand_over(c, d, i); });
            ++untimed;
            if (v != i + 1) ++wrong;
            continue;
          }
          std::optional<int> v = weave::move_on_after(
              1ms, [&] { return bridge::call<void(int)>([&](IntDone d) { hand_over(c, d, i); }); });
          if (!v) {
            ++timed_out;
          } else {
            ++got;
            if (*v != i + 1) ++wrong;
          }
        }
      });
    }
    loop.run();
    EXPECT_EQ(loop.live_fibers(), 0u);
  }
  EXPECT_EQ(got + timed_out + untimed, kRacing);
  int expected_untimed = 0;
  for (int i = 0; i < kRacing; ++i) expected_untimed += (i / kFibers) % 8 == 7;
  EXPECT_EQ(untimed, expected_untimed);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(timed_out, 0) << "no completion raced a timeout: the test did not test the race";
}

}  // namespace
