// queue_workers: a producer fills a queue with jobs, three workers take them, and the main
// fiber waits until every job is done, then sends the workers home.
//
// A port of the worker pool of the asyncio tutorials (the Queue example of the Python
// documentation, shown in "Asynchronous programming in Python", LINCS workshop):
//
//   async def worker(name, queue):
//       while True:
//           sleep_for = await queue.get()
//           await asyncio.sleep(sleep_for)
//           queue.task_done()
//           print(f"{name} has slept for {sleep_for:.2f} seconds")
//
//   queue = asyncio.Queue()
//   for _ in range(20):
//       queue.put_nowait(random.uniform(0.05, 1.0))
//   tasks = [asyncio.create_task(worker(f"worker-{i}", queue)) for i in range(3)]
//   await queue.join()                  # every item got and marked done
//   for task in tasks:
//       task.cancel()                   # the workers loop forever: stop them
//
// What it teaches:
//   - weave::Queue is asyncio.Queue: get() suspends the fiber until an item is there, put()
//     until there is room (the queue here is bounded, so the producer waits for the workers:
//     back-pressure);
//   - task_done() and join() count work, not items: join() returns once every item put has
//     been marked done, which is later than the moment the queue becomes empty;
//   - fibers that loop forever are stopped by cancelling them;
//   - three workers that each sleep finish in about a third of the summed sleep time.
//
// Usage: queue_workers [--virtual-time]
//   --virtual-time  run on a weave::ManualClock: the loop jumps from timer to timer instead of
//                   waiting, so the program ends at once and prints the same timestamps every
//                   time (this is how the test runs it).

#include <chrono>
#include <cstdio>
#include <random>
#include <string_view>
#include <vector>

#include "weave/weave.hpp"

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

constexpr int kJobs = 12;
constexpr int kWorkers = 3;
constexpr std::size_t kQueueSize = 4;  // at most 4 jobs wait in the queue at any time

// One unit of work: "sleep this long", as in the tutorial.
struct Job {
  int id;
  milliseconds duration;
};

// Seconds of loop time since `start`, read from the loop's clock so that virtual time prints
// virtual timestamps.
double seconds_since(weave::TimePoint start) {
  return std::chrono::duration<double>(weave::Loop::current().time() - start).count();
}
double seconds(milliseconds d) { return std::chrono::duration<double>(d).count(); }

// Puts every job in the queue. put() suspends this fiber while the queue is full, so the
// producer can never run more than kQueueSize jobs ahead of the workers.
void produce(weave::Queue<Job>& queue, const std::vector<Job>& jobs, weave::TimePoint start) {
  for (const Job& job : jobs) {
    queue.put(job);
    std::printf("[%.3f s] producer: queued job %2d (%.3f s)\n", seconds_since(start), job.id,
                seconds(job.duration));
  }
}

// The tutorial's worker: an endless loop of get, work, task_done. It never returns; it ends
// when its task is cancelled, which throws weave::Cancelled at the get() or the sleep_for() it
// is suspended in. It needs no cleanup, so it catches nothing.
void worker(int id, weave::Queue<Job>& queue, weave::TimePoint start) {
  for (;;) {
    Job job = queue.get();
    weave::this_fiber::sleep_for(job.duration);  // the "work": other fibers run meanwhile
    std::printf("[%.3f s] worker-%d: finished job %2d, slept %.3f s\n", seconds_since(start), id,
                job.id, seconds(job.duration));
    // Marked done only now that the work is finished: this is what queue.join() waits for.
    queue.task_done();
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool virtual_time = argc > 1 && std::string_view(argv[1]) == "--virtual-time";

  // The jobs, made up front from a seeded generator, so every run gets the same ones. The
  // numbers are taken from std::mt19937 directly (its sequence is fixed by the standard;
  // std::uniform_int_distribution's is not), so the output is the same with every library.
  std::mt19937 random(2024);
  std::vector<Job> jobs;
  milliseconds total_sleep{0};
  for (int i = 1; i <= kJobs; ++i) {
    jobs.push_back(Job{i, milliseconds(50 + random() % 451)});  // 0.050 s to 0.500 s
    total_sleep += jobs.back().duration;
  }

  weave::ManualClock manual_clock;  // must outlive the loop that reads it
  weave::Loop::Options options;
  if (virtual_time) options.clock = &manual_clock;

  weave::run(options, [&] {
    const weave::TimePoint start = weave::Loop::current().time();
    weave::Queue<Job> queue(kQueueSize);

    std::vector<weave::Task<void>> workers;
    for (int i = 1; i <= kWorkers; ++i)
      workers.push_back(weave::spawn([i, &queue, start] { worker(i, queue, start); }));
    weave::Task<void> producer = weave::spawn([&] { produce(queue, jobs, start); });

    // Order matters here. join() returns at once if nothing is unfinished *now*, and at this
    // point the producer has not run yet: the queue is still empty. So first wait until every
    // job is in the queue, then wait until every job is done.
    producer.get();
    queue.join();
    const double elapsed = seconds_since(start);

    // The workers are all blocked in get() now, waiting for jobs that will never come.
    // cancel() throws weave::Cancelled inside each one; join() waits until it has unwound (and,
    // unlike get(), does not rethrow the cancellation here).
    for (weave::Task<void>& w : workers) w.cancel();
    for (weave::Task<void>& w : workers) w.join();

    std::printf("====\n");
    std::printf("%d workers did %d jobs in %.3f s\n", kWorkers, kJobs, elapsed);
    std::printf("the jobs' sleeps add up to %.3f s\n", seconds(total_sleep));
  });
  return 0;
}
