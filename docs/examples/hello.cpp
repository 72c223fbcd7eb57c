// hello: two fibers each say "Hello", sleep one second, and say "World". The whole program
// takes one second, not two, because a sleeping fiber lets the other one run.
//
// The Python original (the asyncio tutorial's first example):
//
//   async def hello():
//       logging.info("Hello")
//       await asyncio.sleep(1)  # non-blocking "I/O" call
//       logging.info("World")
//
//   loop.create_task(hello())
//   loop.create_task(hello())
//
// In weave, hello() is an ordinary function: there is no `async` and no `await`. It suspends
// inside weave::this_fiber::sleep_for, and the loop runs the other fiber meanwhile.
//
// Usage: hello [--virtual-time]
//   --virtual-time  run on a weave::ManualClock: the loop jumps over the sleep instead of
//                   waiting for it, so the program ends at once while every timestamp it
//                   prints stays the same (this is how the test runs it).

#include <chrono>
#include <cstdio>
#include <string_view>

#include "weave/weave.hpp"

using namespace std::chrono_literals;

namespace {

// Seconds of loop time since `start`. The loop's clock is the one to ask, not
// std::chrono::steady_clock, so that the output is the same under virtual time.
double seconds_since(weave::TimePoint start) {
  return std::chrono::duration<double>(weave::Loop::current().time() - start).count();
}

// The fiber's body: plain sequential code. sleep_for() suspends this fiber only; the thread
// goes back to the loop, which runs whatever else is ready (here: the other hello).
void hello(int id, weave::TimePoint start) {
  std::printf("[%.3f s] fiber %d: Hello\n", seconds_since(start), id);
  weave::this_fiber::sleep_for(1s);
  std::printf("[%.3f s] fiber %d: World\n", seconds_since(start), id);
}

}  // namespace

int main(int argc, char** argv) {
  const bool virtual_time = argc > 1 && std::string_view(argv[1]) == "--virtual-time";

  // A ManualClock starts at zero and, with autojump (its default), moves straight to the next
  // timer whenever every fiber is blocked. It must outlive the loop that reads it.
  weave::ManualClock manual_clock;
  weave::Loop::Options options;
  if (virtual_time) options.clock = &manual_clock;

  // weave::run is asyncio.run: it makes a loop, runs the function in a fiber until it
  // returns, and closes the loop.
  weave::run(options, [] {
    const weave::TimePoint start = weave::Loop::current().time();

    // spawn() is create_task(): each call starts a fiber, queued to run in the order spawned.
    weave::Task<void> first = weave::spawn(hello, 1, start);
    weave::Task<void> second = weave::spawn(hello, 2, start);

    // get() suspends this fiber until the task is done (and rethrows its exception, if any).
    // Both fibers sleep at the same time, so by the time the first is done so is the second.
    first.get();
    second.get();

    std::printf("finished in %.2f s\n", seconds_since(start));
  });
  return 0;
}
