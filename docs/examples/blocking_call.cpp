// blocking_call: a blocking call inside a fiber stops every fiber of the loop, because it
// blocks the thread they all share. Through weave::to_thread the same call runs on a pool
// thread, and only the calling fiber waits for it. A heartbeat fiber that beats every 10 ms
// shows the difference.
//
// A port of "Blocking Synchronous Calls" and "concurrent.futures .. To the Rescue!" (demos 09
// synchronous_operation.py and 10 run_in_executor.py of the Cisco "Deep Python" asyncio
// talk):
//
//   async def blocking_sync_call():              async def main():
//       log.info('before blocking call')             with ThreadPoolExecutor() as pool:
//       time.sleep(4)   # every task stalls              await loop.run_in_executor(
//       log.info('after blocking call')                      pool, slow_sync_call)
//
// (asyncio.to_thread(f) is the short form of run_in_executor(None, f); weave has both:
// weave::to_thread and weave::run_in_executor.)
//
// What it teaches:
//   - a fiber suspends only inside weave's waits (sleep_for, Queue::get, Task::get, ...). A
//     call that blocks the thread instead (std::this_thread::sleep_for, a blocking read, a
//     database driver, a slow library call) stops the loop and every fiber on it;
//   - weave::to_thread(fn, args...) runs fn on the default thread pool and suspends only the
//     calling fiber until it returns, with its result or exception: the loop keeps running.
//
// This example is about real time, so it has no virtual-time flag: the blocking call takes
// 150 ms, twice. Its test checks only what cannot depend on the machine's load: the heartbeat's
// worst gap with to_thread is less than half of its worst gap with the direct call, which is
// at least 150 ms.
//
// Usage: blocking_call

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "weave/weave.hpp"

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kBeat = 10ms;       // how often the heartbeat should beat
constexpr milliseconds kBlocking = 150ms;  // how long the blocking call takes

long long to_ms(weave::Duration d) { return std::chrono::duration_cast<milliseconds>(d).count(); }
double seconds_since(weave::TimePoint start) {
  return std::chrono::duration<double>(weave::Loop::current().time() - start).count();
}

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

// Stands for any call that blocks its thread: a synchronous HTTP client, a database driver,
// a file read on a slow disk. Returns the thread it ran on.
std::thread::id slow_sync_call() {
  std::this_thread::sleep_for(kBlocking);
  return std::this_thread::get_id();
}

// The job: a little waiting the weave way, then the slow call, made directly or through
// to_thread.
void job(bool use_thread, weave::TimePoint start) {
  weave::this_fiber::sleep_for(3 * kBeat);  // a few normal beats first
  std::printf("  [%.3f s] job: before the blocking call\n", seconds_since(start));
  const std::thread::id ran_on = use_thread ? weave::to_thread(slow_sync_call)  // fiber waits
                                            : slow_sync_call();                 // thread waits
  std::printf("  [%.3f s] job: after the blocking call, which ran on %s\n", seconds_since(start),
              ran_on == std::this_thread::get_id() ? "the loop's thread" : "a pool thread");
}

// Runs the job next to a heartbeat and returns the heartbeat's worst gap.
weave::Duration experiment(bool use_thread) {
  const weave::TimePoint start = weave::Loop::current().time();
  Heartbeat heart;
  // Spawned first, so the heartbeat starts its clock before the job runs.
  weave::Task<void> beating =
      weave::spawn(weave::SpawnOptions{.name = "heartbeat"}, [&heart] { heart.run(); });
  weave::Task<void> working =
      weave::spawn(weave::SpawnOptions{.name = "job"}, job, use_thread, start);
  working.get();

  // After a direct call, the beat it delayed is overdue but has not run yet: its timer fires
  // on the loop's next turn. Sleep a few beats so that it, and a couple of normal beats after
  // it, are written down before the heartbeat is stopped.
  weave::this_fiber::sleep_for(2 * kBeat + kBeat / 2);
  beating.cancel();
  beating.join();

  heart.print();
  return heart.worst_gap();
}

}  // namespace

int main() {
  weave::run([] {
    std::printf("-- the blocking call made directly in the fiber --\n");
    const weave::Duration direct = experiment(/*use_thread=*/false);

    std::printf("-- the same call through weave::to_thread --\n");
    const weave::Duration threaded = experiment(/*use_thread=*/true);

    std::printf("====\n");
    std::printf("worst heartbeat gap: %lld ms with the direct call, %lld ms with to_thread\n",
                to_ms(direct), to_ms(threaded));
    if (threaded * 2 < direct)
      std::printf("verdict: to_thread kept the heartbeat going; the direct call stopped it\n");
    else
      std::printf("verdict: unexpected: to_thread did not help (is the machine overloaded?)\n");
  });
  return 0;
}
