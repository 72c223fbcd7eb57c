// weave::net::Process: posix_spawn for the child, pipes as Streams, a pidfd on the reactor for
// its exit.

#include "weave/net/process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

extern char** environ;

namespace weave::net {

namespace {

std::atomic<bool> g_force_polling{false};

// waitid's idtype for a pidfd (Linux 5.4); spelled out for C libraries that do not name it.
constexpr auto kPidfdIdType = static_cast<idtype_t>(3);

[[noreturn]] void throw_errno(int err, const std::string& what) {
  throw std::system_error(err, std::generic_category(), what);
}

int pidfd_open(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

int pidfd_send_signal(int pidfd, int sig) noexcept {
#ifdef SYS_pidfd_send_signal
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
#else
  (void)pidfd;
  (void)sig;
  errno = ENOSYS;
  return -1;
#endif
}

// The exit status of a reaped child, in asyncio's convention.
int status_of(const siginfo_t& info) noexcept {
  if (info.si_code == CLD_EXITED) return info.si_status;
  return -info.si_status;  // CLD_KILLED, CLD_DUMPED
}

// Fds made for the child and closed by whoever holds them: the parent closes its copy of the
// child's ends once the child has started, and everything on an error.
struct Fd {
  int fd = -1;
  Fd() = default;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() noexcept {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

// The child's end of a pipe must not be one of 0, 1, 2 (possible when the parent runs with a
// standard fd closed): the dup2 actions below would then overwrite one source with another.
int above_stdio(int fd) {
  if (fd > 2) return fd;
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int err = errno;
  ::close(fd);
  if (moved < 0) throw_errno(err, "weave::net::exec: fcntl(F_DUPFD_CLOEXEC)");
  return moved;
}

// A pipe, close-on-exec at both ends; the parent's end is non-blocking.
void make_pipe(Fd& parent, Fd& child, bool child_reads) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno(errno, "weave::net::exec: pipe2");
  int r = fds[0], w = fds[1];
  Fd& pr = child_reads ? child : parent;
  Fd& pw = child_reads ? parent : child;
  pr.fd = r;
  pw.fd = w;
  child.fd = above_stdio(child.fd);
  int fl = ::fcntl(parent.fd, F_GETFL);
  if (fl < 0 || ::fcntl(parent.fd, F_SETFL, fl | O_NONBLOCK) != 0)
    throw_errno(errno, "weave::net::exec: fcntl(O_NONBLOCK)");
}

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    if (int rc = ::posix_spawn_file_actions_init(&actions))
      throw_errno(rc, "weave::net::exec: posix_spawn_file_actions_init");
    if (int rc = ::posix_spawnattr_init(&attr)) {
      ::posix_spawn_file_actions_destroy(&actions);
      throw_errno(rc, "weave::net::exec: posix_spawnattr_init");
    }
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
  ~SpawnSetup() {
    ::posix_spawnattr_destroy(&attr);
    ::posix_spawn_file_actions_destroy(&actions);
  }
  void check(int rc, const char* what) {
    if (rc != 0) throw_errno(rc, std::string("weave::net::exec: ") + what);
  }
};

}  // namespace

namespace detail {
bool force_pid_polling(bool on) noexcept { return g_force_polling.exchange(on); }
}  // namespace detail

// ---- exec ------------------------------------------------------------------------------------

Process exec(const std::vector<std::string>& argv, ProcessOptions options) {
  if (argv.empty() || argv[0].empty())
    throw std::invalid_argument("weave::net::exec: argv is empty (no program to run)");
  if (options.stdin_ == Stdio::to_stdout || options.stdout_ == Stdio::to_stdout)
    throw std::invalid_argument("weave::net::exec: Stdio::to_stdout is for stderr only");
  Loop& loop = Loop::current();

  // The fds the child gets as 0, 1, 2 (child_*), and the parent's ends of the pipes.
  Fd child_in, child_out, child_err, parent_in, parent_out, parent_err, devnull;
  auto null_fd = [&]() -> int {
    if (devnull.fd < 0) {
      devnull.fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (devnull.fd < 0) throw_errno(errno, "weave::net::exec: open(/dev/null)");
      devnull.fd = above_stdio(devnull.fd);
    }
    return devnull.fd;
  };

  SpawnSetup s;
  // Standard fds in order 0, 1, 2: stderr may copy the child's stdout once that is in place.
  if (options.stdin_ == Stdio::pipe) {
    make_pipe(parent_in, child_in, /*child_reads=*/true);
    s.check(::posix_spawn_file_actions_adddup2(&s.actions, child_in.fd, 0), "adddup2");
  } else if (options.stdin_ == Stdio::devnull) {
    s.check(::posix_spawn_file_actions_adddup2(&s.actions, null_fd(), 0), "adddup2");
  }
  if (options.stdout_ == Stdio::pipe) {
    make_pipe(parent_out, child_out, /*child_reads=*/false);
    s.check(::posix_spawn_file_actions_adddup2(&s.actions, child_out.fd, 1), "adddup2");
  } else if (options.stdout_ == Stdio::devnull) {
    s.check(::posix_spawn_file_actions_adddup2(&s.actions, null_fd(), 1), "adddup2");
  }
  if (options.stderr_ == Stdio::pipe) {
    make_pipe(parent_err, child_err, /*child_reads=*/false);
    s.check(::posix_spawn_file_actions_adddup2(&s.actions, child_err.fd, 2), "adddup2");
  } else if (options.stderr_ == Stdio::devnull) {
    s.check(::posix_spawn_file_actions_adddup2(&s.actions, null_fd(), 2), "adddup2");
  } else if (options.stderr_ == Stdio::to_stdout) {
    s.check(::posix_spawn_file_actions_adddup2(&s.actions, 1, 2), "adddup2");
  }
  // Only 0, 1 and 2 reach the child: O_CLOEXEC covers weave's own fds, and this also covers
  // fds that other code (or another thread) opened without it.
  s.check(::posix_spawn_file_actions_addclosefrom_np(&s.actions, 3), "addclosefrom_np");
  if (!options.cwd.empty())
    s.check(::posix_spawn_file_actions_addchdir_np(&s.actions, options.cwd.c_str()), "addchdir_np");

  // The child starts with no blocked signal and every signal at its default, whatever the
  // parent's threads block, ignore (SIGPIPE) or handle on a loop.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  s.check(::posix_spawnattr_setsigmask(&s.attr, &none), "setsigmask");
  s.check(::posix_spawnattr_setsigdefault(&s.attr, &all), "setsigdefault");
  s.check(::posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
          "setflags");

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  if (options.env) {
    envp.reserve(options.env->size() + 1);
    for (const std::string& e : *options.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }

  // glibc's posix_spawnp runs the child on a vfork-style clone and reports a failed chdir or
  // exec (ENOENT, EACCES, ...) as its return value: no error pipe is needed, and when it fails
  // no child is left behind.
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &s.actions, &s.attr, args.data(),
                          options.env ? envp.data() : environ);
  if (rc != 0) {
    std::string what = "weave::net::exec: cannot run '" + argv[0] + "'";
    if (!options.cwd.empty()) what += " in '" + options.cwd + "'";
    throw_errno(rc, what);
  }

  // From here on the Process owns the child: on any error its destructor kills and reaps it.
  Process p;
  p.pid_ = pid;
  child_in.reset();
  child_out.reset();
  child_err.reset();
  devnull.reset();

  if (!g_force_polling.load(std::memory_order_relaxed)) {
    // The pid cannot be reused before we reap it, so opening the pidfd after the spawn is safe.
    p.pidfd_ = pidfd_open(pid);
    if (p.pidfd_ < 0 && errno != ENOSYS) throw_errno(errno, "weave::net::exec: pidfd_open");
  }
  if (p.pidfd_ >= 0) p.pid_watch_ = IoWatch(p.pidfd_, loop);

  const StreamOptions& so = options.stream_options;
  if (parent_in.fd >= 0) p.stdin_stream_.emplace(parent_in.release(), so, loop);
  if (parent_out.fd >= 0) p.stdout_stream_.emplace(parent_out.release(), so, loop);
  if (parent_err.fd >= 0) p.stderr_stream_.emplace(parent_err.release(), so, loop);
  return p;
}

Process exec_shell(std::string_view command, ProcessOptions options) {
  return exec({"/bin/sh", "-c", std::string(command)}, std::move(options));
}

// ---- Process ---------------------------------------------------------------------------------

Process::Process(Process&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::exchange(o.pidfd_, -1)),
      pid_watch_(std::move(o.pid_watch_)),
      returncode_(std::exchange(o.returncode_, std::nullopt)),
      stdin_stream_(std::exchange(o.stdin_stream_, std::nullopt)),
      stdout_stream_(std::exchange(o.stdout_stream_, std::nullopt)),
      stderr_stream_(std::exchange(o.stderr_stream_, std::nullopt)),
      partial_out_(std::move(o.partial_out_)),
      partial_err_(std::move(o.partial_err_)),
      communicating_(std::exchange(o.communicating_, false)) {}

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    reset();
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::exchange(o.pidfd_, -1);
    pid_watch_ = std::move(o.pid_watch_);
    returncode_ = std::exchange(o.returncode_, std::nullopt);
    stdin_stream_ = std::exchange(o.stdin_stream_, std::nullopt);
    stdout_stream_ = std::exchange(o.stdout_stream_, std::nullopt);
    stderr_stream_ = std::exchange(o.stderr_stream_, std::nullopt);
    partial_out_ = std::move(o.partial_out_);
    partial_err_ = std::move(o.partial_err_);
    communicating_ = std::exchange(o.communicating_, false);
  }
  return *this;
}

Process::~Process() { reset(); }

void Process::reset() noexcept {
  if (pid_ > 0 && !returncode_) reap_now_or_kill();
  // The child is gone: bytes still queued for its stdin have nowhere to go.
  if (stdin_stream_) stdin_stream_->abort();
  stdin_stream_.reset();
  stdout_stream_.reset();
  stderr_stream_.reset();
  if (pid_watch_.valid()) {
    pid_watch_.close();  // closes the pidfd
    pid_watch_ = IoWatch();
  } else if (pidfd_ >= 0) {
    ::close(pidfd_);
  }
  pidfd_ = -1;
  pid_ = -1;
  returncode_.reset();
  partial_out_.clear();
  partial_err_.clear();
  communicating_ = false;
}

// The destructor's policy: a child still running is killed and reaped at once, so that it
// neither lingers as a zombie nor runs on unsupervised. After SIGKILL the blocking waitid
// returns as soon as the kernel has torn the child down (microseconds to a few milliseconds).
void Process::reap_now_or_kill() noexcept {
  try {
    if (try_reap()) return;
  } catch (const std::system_error&) {
    return;  // ECHILD: someone else reaped it; nothing is left to clean up
  }
  send_signal(SIGKILL);
  siginfo_t info{};
  int r;
  do {
    r = pidfd_ >= 0 ? ::waitid(kPidfdIdType, static_cast<id_t>(pidfd_), &info, WEXITED)
                    : ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED);
  } while (r < 0 && errno == EINTR);
  if (r == 0) returncode_ = status_of(info);
}

bool Process::try_reap() {
  if (returncode_) return true;
  siginfo_t info{};
  int r;
  do {
    r = pidfd_ >= 0 ? ::waitid(kPidfdIdType, static_cast<id_t>(pidfd_), &info, WEXITED | WNOHANG)
                    : ::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0)
    throw_errno(errno, "weave::net::Process: waitid for pid " + std::to_string(pid_) +
                           " (was the child reaped elsewhere, by a SIGCHLD handler?)");
  if (info.si_pid == 0) return false;  // still running
  returncode_ = status_of(info);
  return true;
}

Stream& Process::stdin_() {
  if (!stdin_stream_) throw std::logic_error("weave::net::Process::stdin_: stdin is not a pipe");
  return *stdin_stream_;
}
Stream& Process::stdout_() {
  if (!stdout_stream_) throw std::logic_error("weave::net::Process::stdout_: stdout is not a pipe");
  return *stdout_stream_;
}
Stream& Process::stderr_() {
  if (!stderr_stream_) throw std::logic_error("weave::net::Process::stderr_: stderr is not a pipe");
  return *stderr_stream_;
}

std::optional<int> Process::poll() {
  if (!valid()) throw std::logic_error("weave::net::Process::poll on an empty Process");
  try_reap();
  return returncode_;
}

int Process::wait(SourceLocation where) {
  if (!valid()) throw std::logic_error("weave::net::Process::wait on an empty Process");
  if (returncode_) return *returncode_;
  if (!this_fiber::in_fiber())
    throw std::logic_error("weave::net::Process::wait called outside a fiber");
  if (pidfd_ >= 0) {
    // Readiness is forgotten before the check, so an exit between the check and the wait is
    // still reported (edge-triggered). Only a wait() that returns reaps: a cancelled one has
    // taken nothing.
    for (;;) {
      pid_watch_.clear_readable();
      if (try_reap()) return *returncode_;
      pid_watch_.wait_readable(where);
    }
  }
  // Without pidfds (kernels before 5.3): poll, backing off from 1 ms to 50 ms. No SIGCHLD
  // handler is installed, so no other code's children are reaped by accident.
  auto delay = std::chrono::milliseconds(1);
  for (;;) {
    if (try_reap()) return *returncode_;
    this_fiber::sleep_for(delay, where);
    delay = std::min(delay * 2, std::chrono::milliseconds(50));
  }
}

void Process::send_signal(int sig) {
  if (!valid()) throw std::logic_error("weave::net::Process::send_signal on an empty Process");
  if (returncode_) return;  // reaped: the pid may belong to another process by now
  // Not reaped yet, so the pid (and the pidfd) still name our child, possibly a zombie.
  int r = pidfd_ >= 0 ? pidfd_send_signal(pidfd_, sig) : ::kill(pid_, sig);
  if (r != 0 && errno != ESRCH)
    throw_errno(errno, "weave::net::Process::send_signal(" + std::to_string(sig) + ")");
}

Process::Output Process::communicate(std::string_view input, SourceLocation where) {
  if (!valid()) throw std::logic_error("weave::net::Process::communicate on an empty Process");
  if (!this_fiber::in_fiber())
    throw std::logic_error("weave::net::Process::communicate called outside a fiber");
  if (communicating_)
    throw std::logic_error("weave::net::Process::communicate: another call is running");
  if (!input.empty() && !stdin_stream_)
    throw std::logic_error("weave::net::Process::communicate: input given but stdin is not a pipe");
  communicating_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done{communicating_};

  // The input goes to the stdin Stream whole, shielded from cancellation so that a cancelled
  // call has always handed it over; the Stream sends it in the background, as the child reads,
  // and closes the pipe after the last byte (the child's end of input).
  if (stdin_stream_ && !stdin_stream_->is_closing()) {
    shield([&] {
      try {
        if (!input.empty()) stdin_stream_->write(input);
      } catch (const std::system_error& e) {
        // The child has closed its stdin (EPIPE): it did not want the input; not an error.
        if (e.code() != std::errc::broken_pipe && e.code() != std::errc::connection_reset) throw;
      }
      stdin_stream_->close();
    });
  }

  // Reads a pipe to its end, appending as it goes: whatever arrived before a cancellation is
  // kept in the Process, and what had not been read stays in the Stream.
  auto drain_into = [](Stream& s, std::string& to) {
    char buf[16 * 1024];
    while (std::size_t n = s.read_some(std::span<char>(buf, sizeof buf))) to.append(buf, n);
  };

  Task<void> err_reader;
  try {
    if (stderr_stream_ && stdout_stream_) {
      err_reader = spawn(SpawnOptions{.name = "weave::net::Process::communicate(stderr)"},
                         [this, &drain_into] { drain_into(*stderr_stream_, partial_err_); });
      drain_into(*stdout_stream_, partial_out_);
      err_reader.get(where);
    } else if (stdout_stream_) {
      drain_into(*stdout_stream_, partial_out_);
    } else if (stderr_stream_) {
      drain_into(*stderr_stream_, partial_err_);
    }
    wait(where);
  } catch (...) {
    // Cancelled, or a read failed: the helper must not outlive this call (it uses `this`).
    if (err_reader) {
      if (!err_reader.done()) {
        err_reader.cancel();
        shield([&] { err_reader.join(); });
      }
      // Its own error, if any, is secondary to the one being thrown: mark it retrieved.
      if (!err_reader.cancelled()) (void)err_reader.exception();
    }
    throw;
  }
  Output result{std::move(partial_out_), std::move(partial_err_), *returncode_};
  partial_out_.clear();
  partial_err_.clear();
  return result;
}

}  // namespace weave::net
