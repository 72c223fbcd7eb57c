// cpu_starve: a CPU-bound fiber holds the loop, and a heartbeat fiber that should beat every
// 10 ms stops beating until it is done. The same job with a weave::this_fiber::yield() after
// each slice of work lets the heartbeat beat on time. The program runs both and prints the
// heartbeat's gaps.
//
// A port of "Event loop starving" from the asyncio tutorials ("Asynchronous programming in
// Python", LINCS workshop):
//
//   # No await, will block the loop          # Periodically yields back control to the loop
//   async def cpu_intensive():               async def cpu_intensive():
//       s = sum(range(10**8))                    s = 0
//       return s                                 for _ in range(10):
//                                                    s += sum(range(10**7))
//                                                    await asyncio.sleep(0)
//                                                return s
//
// and of the first tutorial's warning about the one bot that does every job of the
// restaurant: "effective only if [each] task is short!".
//
// What it teaches:
//   - fibers are cooperative: a fiber runs until it suspends, and the loop cannot take the
//     thread back from it. Code that computes without suspending starves every other fiber
//     of the loop, timers included;
//   - weave::this_fiber::yield() (asyncio.sleep(0)) is the cure for work that can be cut into
//     slices: it lets everything that is ready run, then continues;
//   - for work that cannot be sliced, or must use several cores, hand it to a thread with
//     weave::to_thread (see blocking_call.cpp).
//
// This example is about real time, so it has no virtual-time flag: each job computes for
// about 100 ms. The work is measured in time rather than in iterations so that every machine
// shows the same thing. Its test checks only one thing that cannot depend on the machine's
// load: the yielding job's worst gap is less than half of the starving job's, which is at
// least 100 ms. (With WEAVE_DEBUG=1 the loop also reports, on stderr, fiber slices that hold
// it longer than 100 ms.)
//
// Usage: cpu_starve

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "weave/weave.hpp"

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kBeat = 10ms;  // how often the heartbeat should beat
constexpr int kSlices = 100;          // the job is cut into this many slices ...
constexpr milliseconds kSlice = 1ms;  // ... of this much computing each

long long to_ms(weave::Duration d) { return std::chrono::duration_cast<milliseconds>(d).count(); }

// A fiber that wakes up every kBeat and writes down how long it really slept. On a free loop
// every gap is kBeat (give or take a fraction of a millisecond); a late beat means that
// something held the loop.
class Heartbeat {
 public:
  // The fiber's body: beats until its task is cancelled (Cancelled is thrown at sleep_for).
  void run() {
    weave::Loop& loop = weave::Loop::current();
    weave::TimePoint last = loop.time();
    for (;;) {
      weave::this_fiber::sleep_for(kBeat);
      const weave::TimePoint now = loop.time();
      gaps_.push_back(now - last);
      last = now;
    }
  }

  weave::Duration worst_gap() const {
    return gaps_.empty() ? weave::Duration::zero() : *std::max_element(gaps_.begin(), gaps_.end());
  }
  void print() const {
    std::printf("  heartbeat gaps (ms):");
    for (weave::Duration g : gaps_) std::printf(" %lld", to_ms(g));
    std::printf("\n  worst gap: %lld ms (it should beat every %lld ms)\n", to_ms(worst_gap()),
                to_ms(kBeat));
  }

 private:
  std::vector<weave::Duration> gaps_;
};

// About `how_long` of pure computation: counts primes by trial division, carrying on from
// `*next`. It never suspends, so nothing else runs on the loop meanwhile. (It reads the clock
// to know when to stop; that does not give the loop a chance to run anything.)
int count_primes_for(milliseconds how_long, std::uint64_t* next) {
  const auto until = std::chrono::steady_clock::now() + how_long;
  int found = 0;
  while (std::chrono::steady_clock::now() < until) {
    for (int batch = 0; batch < 64; ++batch, ++*next) {
      bool prime = *next >= 2;
      for (std::uint64_t d = 2; prime && d * d <= *next; ++d) prime = *next % d != 0;
      found += prime ? 1 : 0;
    }
  }
  return found;
}

// The CPU-heavy job: kSlices slices of computing. If `cooperative`, it yields to the loop
// after every slice; otherwise it computes straight through.
int cpu_intensive(bool cooperative) {
  std::uint64_t next = 2;
  int primes = 0;
  for (int i = 0; i < kSlices; ++i) {
    primes += count_primes_for(kSlice, &next);
    if (cooperative) weave::this_fiber::yield();  // asyncio.sleep(0)
  }
  return primes;
}

// Runs the job next to a heartbeat and returns the heartbeat's worst gap.
weave::Duration experiment(bool cooperative) {
  Heartbeat heart;
  // The heartbeat is spawned first, so it runs first: it starts its clock and goes to sleep
  // before the job takes the thread.
  // The names show up in debug-mode reports and in Loop::dump_tasks().
  weave::Task<void> beating =
      weave::spawn(weave::SpawnOptions{.name = "heartbeat"}, [&heart] { heart.run(); });
  weave::Task<int> job =
      weave::spawn(weave::SpawnOptions{.name = "cpu_intensive"}, cpu_intensive, cooperative);

  const int primes = job.get();

  // A beat that is overdue now (the starving job held the loop past it) has not run yet: its
  // timer fires on the loop's next turn. Sleep a few beats so that it, and a couple of normal
  // beats after it, are written down before the heartbeat is stopped.
  weave::this_fiber::sleep_for(2 * kBeat + kBeat / 2);
  beating.cancel();
  beating.join();

  std::printf("  the job found %d primes\n", primes);
  heart.print();
  return heart.worst_gap();
}

}  // namespace

int main() {
  weave::run([] {
    std::printf("-- a job that computes for %lld ms without yielding --\n",
                to_ms(kSlices * kSlice));
    const weave::Duration starving = experiment(/*cooperative=*/false);

    std::printf("-- the same job, yielding after every %lld ms slice --\n", to_ms(kSlice));
    const weave::Duration yielding = experiment(/*cooperative=*/true);

    std::printf("====\n");
    std::printf("worst heartbeat gap: %lld ms without yield(), %lld ms with yield()\n",
                to_ms(starving), to_ms(yielding));
    if (yielding * 2 < starving)
      std::printf("verdict: yield() kept the heartbeat going; the starving job stopped it\n");
    else
      std::printf("verdict: unexpected: yielding did not help (is the machine overloaded?)\n");
  });
  return 0;
}
