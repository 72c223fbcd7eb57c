#pragma once
// weave::net::Process: a child process with pipes as streams (asyncio.subprocess), waited on
// through a pidfd on the loop's reactor.

#include <sys/types.h>

#include <csignal>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "weave/detail/source_location.hpp"
#include "weave/io.hpp"
#include "weave/net/stream.hpp"

namespace weave {
class Loop;
}

namespace weave::net {

/// What one of the child's standard fds (0, 1, 2) is connected to.
enum class Stdio {
  /// The parent's own fd (asyncio's None): the child writes to the same terminal or file.
  inherit,
  /// A pipe whose other end is a Stream of the Process (asyncio.subprocess.PIPE).
  pipe,
  /// /dev/null (asyncio.subprocess.DEVNULL).
  devnull,
  /// For stderr only: the same as the child's stdout, so both go to one pipe, file or
  /// terminal, interleaved as the child writes them (asyncio.subprocess.STDOUT).
  to_stdout,
};

/// How to start a child: where its standard fds go, its environment and its working
/// directory.
struct ProcessOptions {
  Stdio stdin_ = Stdio::inherit;
  Stdio stdout_ = Stdio::inherit;
  Stdio stderr_ = Stdio::inherit;
  /// The child's whole environment, as "NAME=value" strings; unset: the parent's.
  std::optional<std::vector<std::string>> env{};
  /// The child's working directory; empty: the parent's.
  std::string cwd{};
  /// Options of the pipe Streams (limit, buffer sizes, water marks).
  StreamOptions stream_options{};
};

/// A child process started by exec() (asyncio's asyncio.subprocess.Process).
///
/// The pipes chosen in ProcessOptions are Streams: stdin_() to write to the child, stdout_()
/// and stderr_() to read from it, each with the whole Stream API (read_line(), lines(), drain()
/// for flow control, close() to send the child the end of its input). wait() suspends the
/// calling fiber until the child exits, on a pidfd registered with the loop's reactor, and
/// reaps it: no SIGCHLD handler is installed and no other child of the process is touched.
///
/// The child gets exactly the fds 0, 1 and 2: every other fd of the parent is closed in the
/// child, close-on-exec or not. Its signal mask is empty and every signal has its default
/// disposition, whatever the parent blocked, ignored or handles on its loop.
///
/// @par Example
/// @code
/// auto p = weave::net::exec({"tee", "--"}, {.stdin_ = weave::net::Stdio::pipe,
///                                           .stdout_ = weave::net::Stdio::pipe});
/// p.stdin_().write("Hello\n");
/// std::string line = p.stdout_().read_line();  // "Hello\n"
/// p.terminate();
/// int status = p.wait();  // -SIGTERM
/// @endcode
///
/// @par Exit status
/// returncode() and wait() follow asyncio: the exit code (0-255) if the child exited, or
/// minus the signal number if a signal killed it (-9 for SIGKILL).
///
/// @par Destruction
/// Destroying a Process whose child has not been reaped yet kills the child (SIGKILL) and reaps
/// it at once, without suspending, so that no zombie and no stray child outlives the object:
/// a child meant to outlive it must be waited for first. The pipe Streams are closed (bytes
/// queued for the child's stdin are dropped: the child is gone).
///
/// @par Thread safety
/// Loop-affine: use a Process on the thread of the loop that was current when exec() started
/// it.
class Process {
 public:
  /// An empty Process (valid() is false).
  Process() noexcept = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  /// Kills and reaps a child that was not reaped yet (see "Destruction" above).
  ~Process();

  bool valid() const noexcept { return pid_ > 0; }
  /// The child's process id (it stays reserved until the child is reaped by wait()).
  pid_t pid() const noexcept { return pid_; }

  /// The pipe to the child's stdin (write to it; close() or shutdown_write() sends the end of
  /// the input). @throws std::logic_error if stdin is not a pipe.
  Stream& stdin_();
  /// The pipe from the child's stdout. @throws std::logic_error if stdout is not a pipe.
  Stream& stdout_();
  /// The pipe from the child's stderr. @throws std::logic_error if stderr is not a pipe.
  Stream& stderr_();

  /// Suspends until the child exits, reaps it and returns its exit status (see "Exit status").
  /// Returns at once once the child was reaped. Several fibers may wait at the same time.
  ///
  /// Waiting does not read the pipes: a child that fills a pipe nobody reads blocks forever
  /// (read stdout_() in another fiber, or use communicate()).
  ///
  /// @par Cancellation
  /// A checkpoint while the child runs. A cancelled wait() loses nothing: the child is reaped
  /// only by a wait() that returns, so a later wait() (or returncode()) still gets its status.
  /// Timeouts come from cancel scopes: `weave::move_on_after(5s, [&] { p.wait(); })`.
  /// @par Errors
  /// std::logic_error outside a fiber or on an empty Process; std::system_error if waitid
  /// fails.
  int wait(SourceLocation where = SourceLocation::current());

  /// The exit status if the child was reaped (by wait(), communicate() or poll()), else
  /// nothing. Never suspends.
  std::optional<int> returncode() const noexcept { return returncode_; }
  /// Reaps the child if it has exited, without suspending, and returns returncode().
  std::optional<int> poll();

  /// What communicate() returns: everything the child wrote to its stdout and stderr pipes
  /// ("" for a stream that is not a pipe), and its exit status.
  struct Output {
    std::string out;
    std::string err;
    int returncode = 0;
  };
  /// Sends `input` to the child's stdin and then closes it (if stdin is a pipe), reads its
  /// stdout and stderr pipes to the end at the same time, and waits for the child to exit
  /// (asyncio's communicate()). Writing and reading run concurrently, so a child that writes
  /// megabytes before it reads its input does not deadlock. A child that exits without reading
  /// all its input is not an error (its EPIPE is ignored).
  ///
  /// @par Cancellation
  /// A checkpoint. A cancelled communicate() loses nothing: `input` is always handed to the
  /// stdin pipe in full before the first checkpoint (it is still sent, and stdin closed, after
  /// a cancellation), and the output read so far is kept and returned, before what follows, by
  /// the next communicate(). The child keeps running.
  /// @par Errors
  /// std::logic_error for input when stdin is not a pipe, outside a fiber, or if another
  /// communicate() is running; std::system_error for a read error.
  Output communicate(std::string_view input = {}, SourceLocation where = SourceLocation::current());

  /// Sends `sig` to the child (through its pidfd, so never to a process that reused its pid).
  /// A no-op once the child was reaped, or if it has already exited.
  /// @throws std::system_error if the signal cannot be sent (EPERM, EINVAL).
  void send_signal(int sig);
  /// send_signal(SIGTERM): asks the child to end.
  void terminate() { send_signal(SIGTERM); }
  /// send_signal(SIGKILL): ends the child.
  void kill() { send_signal(SIGKILL); }

 private:
  friend Process exec(const std::vector<std::string>& argv, ProcessOptions options);
  bool try_reap();
  void reap_now_or_kill() noexcept;
  void reset() noexcept;

  pid_t pid_ = -1;
  int pidfd_ = -1;     // -1 when pidfds are not available (then wait() polls)
  IoWatch pid_watch_;  // the pidfd on the reactor: readable once the child exits
  std::optional<int> returncode_;
  std::optional<Stream> stdin_stream_, stdout_stream_, stderr_stream_;
  // What a cancelled communicate() read, for the next one: nothing is lost.
  std::string partial_out_, partial_err_;
  bool communicating_ = false;
};

/// Starts `argv[0]` with arguments `argv[1..]` as a child process (asyncio's
/// create_subprocess_exec). A name without "/" is looked up in the parent's PATH.
///
/// The child is started with posix_spawn (a vfork-style clone, so the parent's memory is not
/// copied), with only fds 0, 1 and 2 (everything else is closed in the child), an empty signal
/// mask and default signal dispositions. Pipes are close-on-exec and non-blocking on the
/// parent's side.
///
/// Needs a current loop (Loop::current()), with which the pipes and the pidfd are registered;
/// it may be called outside a fiber (it never suspends).
///
/// @par Errors
/// std::system_error naming the program if it cannot be started: ENOENT (no such program),
/// EACCES (not executable), and so on; nothing is left behind (no child, no fd).
/// std::invalid_argument for an empty argv or Stdio::to_stdout for stdin or stdout.
Process exec(const std::vector<std::string>& argv, ProcessOptions options = {});

/// Runs `command` with /bin/sh -c (asyncio's create_subprocess_shell).
Process exec_shell(std::string_view command, ProcessOptions options = {});

namespace detail {
/// For tests: when true, Processes started afterwards do without a pidfd and wait() polls
/// with waitid(WNOHANG) at growing intervals (1 ms up to 50 ms), as it does on kernels
/// before 5.3. Returns the previous setting.
bool force_pid_polling(bool on) noexcept;
}  // namespace detail

}  // namespace weave::net
