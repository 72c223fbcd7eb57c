// subprocess_tee: feeds `tee` through a pipe and logs what it echoes from another fiber, then
// terminates it; then hands a whole input to `tr` and collects its output with communicate().
//
// The Python original (the asyncio tutorial's "Subprocesses" cells):
//
//   async def log_stream(stream):
//       while line := await stream.readline():
//           logging.info(line.decode('utf-8'))
//
//   proc = await asyncio.create_subprocess_shell(
//       "tee --", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
//   logger = loop.create_task(log_stream(proc.stdout))
//   proc.stdin.write(b"Hello\n")
//   proc.stdin.write(b"World\n")
//   logger.cancel()
//   proc.terminate()
//
// In weave the child's pipes are weave::net::Streams: the logger is a plain loop over the
// lines of tee's stdout, in a fiber of its own, and nothing in it says `await`. (In the
// notebook, time passes between the cells while tee echoes; a program waits for the two lines
// to be logged before it cancels the logger.)
//
// Usage: subprocess_tee

#include <chrono>
#include <csignal>
#include <cstdio>
#include <string>

#include "weave/net.hpp"
#include "weave/weave.hpp"

using namespace std::chrono_literals;

namespace {

// Logs every line of `stream` as it arrives, with the loop time since `start`, and sets
// `logged` after `expected` lines. It ends when the stream does, or when it is cancelled.
void log_stream(weave::net::Stream& stream, weave::TimePoint start, int expected,
                weave::Event& logged) {
  int count = 0;
  for (const std::string& line : stream.lines()) {
    double t = std::chrono::duration<double>(weave::Loop::current().time() - start).count();
    std::printf("[logger +%.3f s] %s\n", t, line.c_str());
    if (++count == expected) logged.set();
  }
}

}  // namespace

int main() {
  return weave::run([] {
    weave::TimePoint start = weave::Loop::current().time();
    namespace net = weave::net;

    // `tee --` copies its stdin to its stdout: both are pipes, so this program writes the one
    // and reads the other.
    net::Process proc =
        net::exec_shell("tee --", {.stdin_ = net::Stdio::pipe, .stdout_ = net::Stdio::pipe});
    std::printf("started tee (pid %d)\n", static_cast<int>(proc.pid()));

    weave::Event logged;
    auto logger = weave::spawn(log_stream, std::ref(proc.stdout_()), start, 2, std::ref(logged));
    proc.stdin_().write("Hello\n");
    proc.stdin_().write("World\n");

    weave::fail_after(10s, [&] { logged.wait(); });  // a safety net, not a part of the lesson
    logger.cancel();
    logger.join();
    std::printf("logger cancelled: %s\n", logger.cancelled() ? "yes" : "no");
    proc.terminate();
    int status = proc.wait();
    std::printf("tee ended with returncode %d (%s)\n", status,
                status == -SIGTERM ? "terminated by SIGTERM" : "unexpected");

    // The whole conversation at once: communicate() writes the input while it reads the
    // output (no deadlock however large either is), then waits for the child.
    net::Process tr =
        net::exec({"tr", "a-z", "A-Z"}, {.stdin_ = net::Stdio::pipe, .stdout_ = net::Stdio::pipe});
    auto result = tr.communicate("hello from a weave fiber\n");
    std::printf("tr answered: %s", result.out.c_str());
    std::printf("tr ended with returncode %d\n", result.returncode);
    return status == -SIGTERM && result.returncode == 0 ? 0 : 1;
  });
}
