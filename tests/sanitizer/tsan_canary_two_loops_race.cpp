// TSan canary: two loops on two threads; a fiber of each writes one global with no
// synchronization. TSan must report a data race (the test passes only if it does): fiber
// switches order the fibers of one thread, never fibers of different threads.

#include <atomic>
#include <cstdio>
#include <thread>

#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

long g_shared = 0;  // written by fibers of both loops, unsynchronized: the bug

// Relaxed, so that TSan sees no synchronization through it. It only makes sure both racing
// fibers are alive at once: TSan recycles the slots of finished threads and fibers, and an
// access made under a recycled slot can look ordered before the new owner's accesses.
std::atomic<int> g_arrived{0};

void run_loop_with_a_racing_fiber() {
  weave::Loop loop;
  for (int f = 0; f < 3; ++f) {
    loop.spawn([] {
      for (int i = 0; i < 10; ++i) weave::this_fiber::yield();
    });
  }
  loop.spawn([] {
    weave::this_fiber::yield();  // the race happens after fiber switches
    g_shared = g_shared + 1;
    g_arrived.fetch_add(1, std::memory_order_relaxed);
    while (g_arrived.load(std::memory_order_relaxed) < 2) std::this_thread::yield();
    weave::this_fiber::yield();
    g_shared = g_shared + 1;
  });
  loop.run();
}

}  // namespace

int main() {
  std::thread a(run_loop_with_a_racing_fiber);
  std::thread b(run_loop_with_a_racing_fiber);
  a.join();
  b.join();
  std::printf("canary: finished without a report (shared=%ld)\n", g_shared);
  return 0;
}
