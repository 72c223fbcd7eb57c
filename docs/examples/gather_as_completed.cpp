// gather_as_completed: ten tasks sleep for different lengths of time and return a value. Two
// ways to collect the results: weave::gather returns them all at once, in the order the tasks
// were spawned; weave::as_completed hands each one over as soon as it is ready, in the order
// the tasks finish.
//
// A port of "Getting Results back from Coroutines" (demos 07 gather.py and 08 as_completed.py
// of the Cisco "Deep Python" asyncio talk), and of the as_completed loop of the LINCS
// workshop:
//
//   coros = [update_counter(_) for _ in range(TASKS)]
//   results = await asyncio.gather(*coros)           # every result, in the order given
//   for id, val in results:
//       log.info(f'update_counter({id}) set the counter to {val}')
//
//   for future in asyncio.as_completed(futures):    # each result, as soon as it is ready
//       print(await future)
//
// What it teaches:
//   - gather waits for the slowest task, then returns every value in spawn order: use it when
//     you need all the results before going on;
//   - as_completed yields the tasks in the order they finish: use it to act on each result at
//     once (show the first page that arrives, start the next step early);
//   - both take ten tasks that already run concurrently: the whole set takes as long as the
//     slowest task, not the sum of all of them.
//
// Usage: gather_as_completed [--virtual-time]
//   --virtual-time  run on a weave::ManualClock: the loop jumps from timer to timer instead of
//                   waiting, so the program ends at once with the same output every time (this
//                   is how the test runs it).

#include <chrono>
#include <cstdio>
#include <string_view>
#include <vector>

#include "weave/as_completed.hpp"
#include "weave/gather.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

// How long task 0, 1, ... 9 takes: a different length each, in no particular order, so that
// the completion order (3, 7, 1, ...) is visibly not the spawn order (0, 1, 2, ...).
constexpr milliseconds kDurations[] = {400ms,  200ms, 900ms, 100ms, 700ms,
                                       1000ms, 500ms, 150ms, 800ms, 300ms};

double seconds_since(weave::TimePoint start) {
  return std::chrono::duration<double>(weave::Loop::current().time() - start).count();
}

// What a task returns: which task it was, and the value it computed.
struct Reply {
  int id;
  int value;
};

// The tutorial's update_counter(id): some waiting, then a result.
Reply compute(int id) {
  weave::this_fiber::sleep_for(kDurations[id]);
  return Reply{id, id * id};
}

std::vector<weave::Task<Reply>> spawn_all() {
  std::vector<weave::Task<Reply>> tasks;
  for (int id = 0; id < static_cast<int>(std::size(kDurations)); ++id)
    tasks.push_back(weave::spawn(compute, id));
  return tasks;
}

void with_gather() {
  const weave::TimePoint start = weave::Loop::current().time();
  std::vector<weave::Task<Reply>> tasks = spawn_all();

  // One wait for all ten. Moving the vector in moves each value out of its task instead of
  // copying it. (If a task threw, gather would rethrow at once; the others would go on.)
  std::vector<Reply> replies = weave::gather(std::move(tasks));

  for (const Reply& r : replies)
    std::printf("[%.3f s] task %d -> %2d\n", seconds_since(start), r.id, r.value);
}

// The sum of every task's sleep: what the run would take if the tasks ran one after another.
double summed_seconds() {
  milliseconds sum{0};
  for (milliseconds d : kDurations) sum += d;
  return std::chrono::duration<double>(sum).count();
}

void with_as_completed() {
  const weave::TimePoint start = weave::Loop::current().time();

  // Each step of the loop suspends this fiber until the next task finishes, and yields that
  // task; get() does not wait any more, it returns the value (or rethrows what the task threw).
  for (weave::Task<Reply> task : weave::as_completed(spawn_all())) {
    const Reply& r = task.get();
    std::printf("[%.3f s] task %d -> %2d\n", seconds_since(start), r.id, r.value);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool virtual_time = argc > 1 && std::string_view(argv[1]) == "--virtual-time";

  weave::ManualClock manual_clock;  // must outlive the loop that reads it
  weave::Loop::Options options;
  if (virtual_time) options.clock = &manual_clock;

  weave::run(options, [] {
    std::printf("-- gather: every result at once, in spawn order --\n");
    with_gather();
    std::printf("-- as_completed: each result when it is ready, in completion order --\n");
    with_as_completed();
    std::printf("each set took as long as its slowest task, not the %.3f s of all ten\n",
                summed_seconds());
  });
  return 0;
}
