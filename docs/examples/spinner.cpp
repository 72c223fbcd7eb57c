// spinner: animate `|/-\` on the terminal while a slow function computes the answer, twice:
// first with a thread, then with a fiber.
//
// A port of the two spinner scripts of the asyncio tutorials:
//
//   spinner_thread.py                         spinner_await.py
//   -----------------                         ----------------
//   def spin(msg, signal):                    async def spin(msg):
//       for char in cycle('|/-\\'):               for char in cycle('|/-\\'):
//           ...write the status line...               ...write the status line...
//           time.sleep(.1)                            try:
//           if not signal.go:                             await asyncio.sleep(.1)
//               break                                 except asyncio.CancelledError:
//       ...clear the line...                              break
//                                                 ...clear the line...
//   def slow_function():                      async def slow_function():
//       time.sleep(3)                             await asyncio.sleep(3)
//       return 42                                 return 42
//
//   def supervisor():                         async def supervisor():
//       signal = Signal()                         spinner = asyncio.ensure_future(spin(...))
//       spinner = Thread(target=spin, ...)        result = await slow_function()
//       spinner.start()                           spinner.cancel()
//       result = slow_function()                  return result
//       signal.go = False
//       spinner.join()
//       return result
//
// The fiber version reads like the thread version, minus the shared flag: the spinner is
// stopped by cancelling its task, and its status line is cleared by a destructor instead of an
// `except CancelledError: break`.
//
// Usage: spinner [--fast]
//   --fast  shorten the thread version's blocking sleep to 0.3 s and run the fiber version on
//           virtual time (weave::ManualClock), so the whole program ends in well under a second
//           (this is how the test runs it).

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <thread>

#include "weave/weave.hpp"

using namespace std::chrono_literals;

namespace {

constexpr std::string_view kFrames = "|/-\\";
constexpr const char* kMessage = "thinking!";

// The status line "| thinking!" on the terminal. Showing a frame writes it and moves the
// cursor back to the start of the line with backspaces, so the next frame overwrites it. The
// destructor blanks the line, however the owner ends: after a normal return, and while a
// weave::Cancelled exception unwinds the spinner fiber alike.
//
// When stdout is not a terminal (a log file, a test), backspaces do not animate anything, so
// the frames are only counted and the destructor prints how many there were.
class StatusLine {
 public:
  StatusLine() = default;
  StatusLine(const StatusLine&) = delete;
  StatusLine& operator=(const StatusLine&) = delete;
  ~StatusLine() {
    if (!kTerminal) {
      std::printf("(the spinner drew %zu frames)\n", frames_);
      return;
    }
    for (std::size_t i = 0; i < width_; ++i) std::fputc(' ', stdout);
    backspace();
    std::fflush(stdout);
  }

  void show(char frame, const char* message) {
    ++frames_;
    if (!kTerminal) return;
    width_ = static_cast<std::size_t>(std::printf("%c %s", frame, message));
    std::fflush(stdout);
    backspace();
  }

 private:
  static inline const bool kTerminal = ::isatty(STDOUT_FILENO) == 1;

  void backspace() const {
    for (std::size_t i = 0; i < width_; ++i) std::fputc('\b', stdout);
  }
  std::size_t width_ = 0;
  std::size_t frames_ = 0;
};

// ---- 1. With a thread -------------------------------------------------------------------------

// Python's `Signal` class with its `go` attribute. The two threads really run at the same time,
// so the flag must be atomic. (std::jthread's stop_token is the modern spelling of the same
// idea; the flag keeps the port close to the original.)
void spin_thread(const char* message, const std::atomic<bool>& go) {
  StatusLine line;
  for (std::size_t i = 0; go.load(); ++i) {
    line.show(kFrames[i % kFrames.size()], message);
    std::this_thread::sleep_for(100ms);
  }
}

// Blocks the whole thread: nothing else can run on it meanwhile, hence the second thread.
int slow_function_blocking(std::chrono::milliseconds how_long) {
  std::this_thread::sleep_for(how_long);  // pretend to wait a long time for I/O
  return 42;
}

int supervisor_thread(std::chrono::milliseconds how_long) {
  std::atomic<bool> go{true};
  // Printed first: a std::thread starts running at construction (Python's Thread waits for
  // start()), and its first frame would otherwise race with this line.
  std::printf("spinner object: a std::thread running spin_thread\n");
  std::fflush(stdout);
  std::thread spinner(spin_thread, kMessage, std::cref(go));
  int result = slow_function_blocking(how_long);
  go.store(false);  // ask the spinner to stop ...
  spinner.join();   // ... and wait until it has cleared its line
  return result;
}

// ---- 2. With a fiber --------------------------------------------------------------------------

// The spinner fiber. It catches nothing: when its task is cancelled, sleep_for throws
// weave::Cancelled, the exception unwinds through here (the StatusLine destructor clears the
// line) and ends the fiber. weave::Cancelled is deliberately not a std::exception, so a
// `catch (const std::exception&)` written for ordinary errors could not swallow it either.
void spin_fiber(const char* message) {
  StatusLine line;
  for (std::size_t i = 0;; ++i) {
    line.show(kFrames[i % kFrames.size()], message);
    weave::this_fiber::sleep_for(100ms);  // a cancellation checkpoint
  }
}

// The same slow function, but sleep_for suspends only this fiber: the thread is free to run the
// spinner in between.
int slow_function() {
  weave::this_fiber::sleep_for(3s);  // pretend to wait a long time for I/O
  return 42;
}

int supervisor_fiber() {
  weave::Task<void> spinner =
      weave::spawn(weave::SpawnOptions{.name = "spinner"}, spin_fiber, kMessage);
  std::printf("spinner object: task '%s' (id %llu, not started yet)\n", spinner.name().c_str(),
              static_cast<unsigned long long>(spinner.id()));
  int result = slow_function();
  spinner.cancel();  // Cancelled is thrown inside spin_fiber at its sleep_for ...
  spinner.join();    // ... and join() waits until it has unwound; it does not rethrow
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  const bool fast = argc > 1 && std::strcmp(argv[1], "--fast") == 0;

  std::printf("-- with a thread --\n");
  std::printf("Answer: %d\n", supervisor_thread(fast ? 300ms : 3000ms));

  std::printf("-- with a fiber --\n");
  weave::ManualClock virtual_time;  // must outlive the loop that reads it
  weave::Loop::Options options;
  if (fast) options.clock = &virtual_time;
  std::printf("Answer: %d\n", weave::run(options, supervisor_fiber));
  return 0;
}
