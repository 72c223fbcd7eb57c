// weave::net::Process: exec, pipes as streams, wait on a pidfd, communicate, signals, and the
// destructor's no-zombie policy.

#include "weave/net/process.hpp"
// ^ first, on its own: proves the header under test is self-contained

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "weave/cancel_scope.hpp"
#include "weave/errors.hpp"
#include "weave/loop.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
using weave::net::exec;
using weave::net::exec_shell;
using weave::net::Process;
using weave::net::ProcessOptions;
using weave::net::Stdio;

// Runs `fn` in a fiber on a fresh loop and returns its result.
template <class F>
auto in_fiber(F fn) {
  weave::Loop loop;
  return loop.run_until_complete(loop.spawn(std::move(fn)));
}

std::size_t open_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // the directory's own fd
}

bool proc_exists(pid_t pid) {
  struct stat st;
  return ::stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0;
}

// The state letter of /proc/<pid>/stat ('Z' for a zombie), or 0 if it is gone.
char proc_state(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  auto close_paren = line.rfind(')');
  return close_paren + 2 < line.size() ? line[close_paren + 2] : 0;
}

// Polls until the unreaped child `pid` has exited (is a zombie): a few ms at most for `true`.
void wait_until_zombie(pid_t pid) {
  for (int i = 0; i < 5000 && proc_state(pid) != 'Z'; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(proc_state(pid), 'Z');
}

// True if `pid` is neither running nor a zombie of ours.
bool reaped(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG) != 0 &&
         errno == ECHILD && !proc_exists(pid);
}

// A signal mask field of /proc/<pid>/status ("SigBlk:\t<hex>").
unsigned long long sig_field(const std::string& status, const std::string& name) {
  auto at = status.find(name + ":\t");
  if (at == std::string::npos) return ~0ull;
  return std::stoull(status.substr(at + name.size() + 2, 16), nullptr, 16);
}

ProcessOptions pipes(bool in, bool out, bool err = false) {
  ProcessOptions o;
  if (in) o.stdin_ = Stdio::pipe;
  if (out) o.stdout_ = Stdio::pipe;
  if (err) o.stderr_ = Stdio::pipe;
  return o;
}

// ---- Starting ----------------------------------------------------------------------------------

TEST(Process, WaitReturnsTheExitCode) {
  in_fiber([] {
    Process p = exec_shell("exit 3");
    EXPECT_TRUE(p.valid());
    EXPECT_GT(p.pid(), 0);
    EXPECT_EQ(p.wait(), 3);
    EXPECT_EQ(p.returncode(), 3);
    EXPECT_EQ(p.wait(), 3);  // again: at once, the same status
  });
}

TEST(Process, MissingProgramIsAClearSystemErrorAndLeavesNothingBehind) {
  weave::Loop loop;
  std::size_t before = open_fds();
  try {
    exec({"weave-no-such-program-xyz", "arg"}, pipes(true, true, true));
    FAIL() << "exec of a missing program did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find("weave-no-such-program-xyz"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(open_fds(), before);
  siginfo_t info{};
  EXPECT_NE(::waitid(P_ALL, 0, &info, WEXITED | WNOHANG), 0);  // no child of ours exists
  EXPECT_EQ(errno, ECHILD);
}

TEST(Process, NotExecutableIsEacces) {
  char path[] = "/tmp/weave-process-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ::chmod(path, 0644);
  weave::Loop loop;
  try {
    exec({path});
    ADD_FAILURE() << "exec of a file without execute permission did not throw";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::permission_denied) << e.what();
  }
  ::unlink(path);
}

TEST(Process, BadArgumentsAreRejected) {
  weave::Loop loop;
  EXPECT_THROW(exec({}), std::invalid_argument);
  ProcessOptions o;
  o.stdout_ = Stdio::to_stdout;
  EXPECT_THROW(exec({"true"}, o), std::invalid_argument);
  o = {};
  o.stdin_ = Stdio::to_stdout;
  EXPECT_THROW(exec({"true"}, o), std::invalid_argument);
}

TEST(Process, MisuseIsALogicError) {
  weave::Loop loop;
  Process p = exec({"true"});
  EXPECT_THROW(p.stdin_(), std::logic_error);
  EXPECT_THROW(p.stdout_(), std::logic_error);
  EXPECT_THROW(p.stderr_(), std::logic_error);
  EXPECT_THROW(p.wait(), std::logic_error);  // outside a fiber
  loop.run_until_complete(loop.spawn([&] {
    EXPECT_THROW(p.communicate("input but no stdin pipe"), std::logic_error);
    EXPECT_EQ(p.wait(), 0);
  }));
  Process empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_THROW(empty.poll(), std::logic_error);
  EXPECT_THROW(empty.send_signal(SIGTERM), std::logic_error);
}

// ---- Pipes ---------------------------------------------------------------------------------

// The seeds' example: feed tee through a pipe, read its output back, then end it.
TEST(Process, TeeEchoesItsInputThroughThePipes) {
  in_fiber([] {
    Process p = exec({"tee", "--"}, pipes(true, true));
    p.stdin_().write("Hello\n");
    p.stdin_().write("World\n");
    EXPECT_EQ(p.stdout_().read_line(), "Hello\n");
    EXPECT_EQ(p.stdout_().read_line(), "World\n");
    p.terminate();
    EXPECT_EQ(p.wait(), -SIGTERM);
  });
}

TEST(Process, ClosingStdinEndsTheChildsInput) {
  in_fiber([] {
    Process p = exec({"cat"}, pipes(true, true));
    p.stdin_().write("one\ntwo");
    p.stdin_().close();
    std::vector<std::string> lines;
    for (const std::string& line : p.stdout_().lines()) lines.push_back(line);
    EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
    EXPECT_TRUE(p.stdout_().at_eof());
    EXPECT_EQ(p.wait(), 0);
  });
}

TEST(Process, StderrToStdoutMergesThem) {
  in_fiber([] {
    ProcessOptions o = pipes(false, true);
    o.stderr_ = Stdio::to_stdout;
    Process p = exec_shell("echo out; echo err >&2", o);
    EXPECT_EQ(p.stdout_().read_to_eof(), "out\nerr\n");
    EXPECT_THROW(p.stderr_(), std::logic_error);
    EXPECT_EQ(p.wait(), 0);
  });
}

TEST(Process, DevnullGivesEmptyInputAndSwallowsOutput) {
  in_fiber([] {
    ProcessOptions o = pipes(false, true);
    o.stdin_ = Stdio::devnull;
    Process cat = exec({"cat"}, o);
    EXPECT_EQ(cat.stdout_().read_to_eof(), "");
    EXPECT_EQ(cat.wait(), 0);

    ProcessOptions quiet;
    quiet.stdout_ = Stdio::devnull;
    quiet.stderr_ = Stdio::devnull;
    Process p = exec_shell("echo nobody sees this; echo nor this >&2; exit 5", quiet);
    EXPECT_EQ(p.wait(), 5);
  });
}

TEST(Process, EnvironmentAndWorkingDirectory) {
  in_fiber([] {
    ProcessOptions o = pipes(false, true);
    o.env = std::vector<std::string>{"WEAVE_TEST_VAR=forty-two"};
    o.cwd = "/tmp";
    Process p = exec({"/bin/sh", "-c", "echo \"$WEAVE_TEST_VAR\"; pwd; env | wc -l"}, o);
    std::string out = p.stdout_().read_to_eof();
    EXPECT_EQ(p.wait(), 0);
    std::istringstream in(out);
    std::string var, dir;
    std::getline(in, var);
    std::getline(in, dir);
    EXPECT_EQ(var, "forty-two");
    EXPECT_EQ(dir, "/tmp");
  });
}

TEST(Process, MissingWorkingDirectoryIsAClearError) {
  weave::Loop loop;
  ProcessOptions o;
  o.cwd = "/weave-no-such-dir";
  try {
    exec({"true"}, o);
    FAIL() << "no error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    EXPECT_NE(std::string(e.what()).find("/weave-no-such-dir"), std::string::npos) << e.what();
  }
}

// Only 0, 1 and 2 reach the child, even an fd the parent opened without O_CLOEXEC.
TEST(Process, ChildSeesOnlyItsStandardFds) {
  int leaky = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC, on purpose
  ASSERT_GE(leaky, 0);
  std::string out = in_fiber([] {
    Process p = exec({"ls", "/proc/self/fd"}, pipes(true, true, true));
    std::string s = p.stdout_().read_to_eof();
    EXPECT_EQ(p.wait(), 0);
    return s;
  });
  ::close(leaky);
  // ls itself has one more fd open: the directory it lists (3).
  EXPECT_EQ(out, "0\n1\n2\n3\n");
}

TEST(Process, ParentSignalMaskAndIgnoredSignalsDoNotReachTheChild) {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  struct sigaction ign {
  }, old_pipe{};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old_pipe);
  std::string status = in_fiber([] {
    Process p = exec({"cat", "/proc/self/status"}, pipes(false, true));
    std::string s = p.stdout_().read_to_eof();
    EXPECT_EQ(p.wait(), 0);
    // And a blocked SIGTERM in the parent does not make the child immune to terminate().
    Process sleeper = exec({"sleep", "100"});
    sleeper.terminate();
    EXPECT_EQ(sleeper.wait(), -SIGTERM);
    return s;
  });
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  // The standard signals (1-31, the low 31 bits): none blocked, none ignored. (glibc's own
  // real-time signals 32 and 33 are the C library's business.)
  EXPECT_EQ(sig_field(status, "SigBlk") & 0x7fffffffu, 0u) << status;
  EXPECT_EQ(sig_field(status, "SigIgn") & 0x7fffffffu, 0u) << status;
}

// ---- Signals and exit status ---------------------------------------------------------------

TEST(Process, KillAndTerminateGiveMinusTheSignal) {
  in_fiber([] {
    Process a = exec({"sleep", "100"});
    Process b = exec({"sleep", "100"});
    Process c = exec({"sleep", "100"});
    EXPECT_EQ(a.returncode(), std::nullopt);
    EXPECT_EQ(a.poll(), std::nullopt);
    a.kill();
    b.terminate();
    c.send_signal(SIGINT);
    EXPECT_EQ(a.wait(), -SIGKILL);
    EXPECT_EQ(b.wait(), -SIGTERM);
    EXPECT_EQ(c.wait(), -SIGINT);
  });
}

TEST(Process, SignallingAnExitedChildIsANoOp) {
  in_fiber([] {
    Process p = exec({"true"});
    wait_until_zombie(p.pid());  // exited, not yet reaped
    EXPECT_NO_THROW(p.terminate());
    EXPECT_EQ(p.wait(), 0);
    EXPECT_NO_THROW(p.kill());  // reaped: the pid may be someone else's now; nothing is sent
  });
}

TEST(Process, PollReapsWithoutSuspending) {
  weave::Loop loop;
  Process p = exec({"true"});
  wait_until_zombie(p.pid());
  EXPECT_EQ(p.poll(), 0);
  EXPECT_EQ(p.returncode(), 0);
  EXPECT_TRUE(reaped(p.pid()));
}

// ---- Cancellation --------------------------------------------------------------------------

TEST(Process, CancelledWaitDoesNotLoseTheExitStatus) {
  in_fiber([] {
    Process p = exec_shell("read line; exit 7", pipes(true, false));
    bool timed_out = weave::move_on_after(1ms, [&] { p.wait(); });
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(p.returncode(), std::nullopt);

    auto waiter = weave::spawn([&] { return p.wait(); });
    weave::this_fiber::yield();
    waiter.cancel();
    EXPECT_THROW(waiter.get(), weave::Cancelled);

    p.stdin_().write("go\n");
    EXPECT_EQ(p.wait(), 7);
  });
}

// The child exits, and the waiting fiber is cancelled before it runs again: the status is
// still there for the next wait().
TEST(Process, CancellationRacingTheExitKeepsTheStatus) {
  in_fiber([] {
    Process p = exec_shell("read line; exit 9", pipes(true, false));
    auto waiter = weave::spawn([&] { return p.wait(); });
    weave::this_fiber::yield();  // the waiter is parked on the pidfd
    p.stdin_().write("go\n");
    wait_until_zombie(p.pid());
    waiter.cancel();
    EXPECT_THROW(waiter.get(), weave::Cancelled);
    EXPECT_EQ(p.returncode(), std::nullopt);
    EXPECT_EQ(p.wait(), 9);
  });
}

TEST(Process, SeveralFibersMayWait) {
  in_fiber([] {
    Process p = exec_shell("read line; exit 2", pipes(true, false));
    auto w1 = weave::spawn([&] { return p.wait(); });
    auto w2 = weave::spawn([&] { return p.wait(); });
    weave::this_fiber::yield();
    p.stdin_().write("go\n");
    EXPECT_EQ(w1.get(), 2);
    EXPECT_EQ(w2.get(), 2);
  });
}

// ---- communicate ---------------------------------------------------------------------------

TEST(Process, CommunicateSendsInputAndCollectsBothOutputs) {
  in_fiber([] {
    Process p = exec_shell("cat; echo done >&2; exit 4", pipes(true, true, true));
    auto r = p.communicate("some input\n");
    EXPECT_EQ(r.out, "some input\n");
    EXPECT_EQ(r.err, "done\n");
    EXPECT_EQ(r.returncode, 4);
    EXPECT_EQ(p.returncode(), 4);
  });
}

// Megabytes each way at once: writing stdin while reading stdout and stderr, or it deadlocks
// (cat blocks writing its stdout until we read, and we would block writing its stdin).
TEST(Process, CommunicateDoesNotDeadlockOnBigOutputs) {
  in_fiber([] {
    std::string input(4 << 20, 'i');
    for (std::size_t i = 0; i < input.size(); i += 4097) input[i] = static_cast<char>('a' + i % 26);
    Process p = exec_shell("cat; head -c 3000000 /dev/zero >&2", pipes(true, true, true));
    auto r = p.communicate(input);
    EXPECT_EQ(r.out.size(), input.size());
    EXPECT_TRUE(r.out == input);
    EXPECT_EQ(r.err.size(), 3000000u);
    EXPECT_EQ(r.returncode, 0);
  });
}

TEST(Process, CommunicateIgnoresAChildThatDoesNotReadItsInput) {
  in_fiber([] {
    Process p = exec({"true"}, pipes(true, true));
    auto r = p.communicate(std::string(1 << 20, 'x'));  // more than a pipe holds
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.returncode, 0);
  });
}

TEST(Process, CommunicateWithoutPipesJustWaits) {
  in_fiber([] {
    ProcessOptions quiet;
    quiet.stdout_ = Stdio::devnull;
    Process p = exec_shell("echo hidden; exit 6", quiet);
    auto r = p.communicate();
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "");
    EXPECT_EQ(r.returncode, 6);
  });
}

// A cancelled communicate() keeps what it read: the next call returns it, then the rest.
TEST(Process, CancelledCommunicateKeepsTheOutputReadSoFar) {
  weave::Loop loop;
  std::size_t fibers_before = loop.live_fibers();
  loop.run_until_complete(loop.spawn([&] {
    // The child writes to both pipes, then sleeps until it is killed.
    Process p =
        exec_shell("echo first; echo first-err >&2; exec sleep 100", pipes(false, true, true));
    bool timed_out = weave::move_on_after(20ms, [&] { p.communicate(); });
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(p.returncode(), std::nullopt);  // still running
    p.kill();
    auto r = p.communicate();
    EXPECT_EQ(r.out, "first\n");
    EXPECT_EQ(r.err, "first-err\n");
    EXPECT_EQ(r.returncode, -SIGKILL);
  }));
  EXPECT_EQ(loop.live_fibers(), fibers_before);  // the stderr reader is gone too
}

TEST(Process, CommunicateTwiceAtOnceIsALogicError) {
  in_fiber([] {
    Process p = exec({"cat"}, pipes(true, true));
    auto first = weave::spawn([&] { return p.communicate(); });
    weave::this_fiber::yield();
    EXPECT_THROW(p.communicate(), std::logic_error);
    EXPECT_EQ(first.get().returncode, 0);  // stdin was closed by the first: cat ends
  });
}

// ---- Destruction: no zombies, no stray children, no fd leaks -------------------------------

TEST(Process, DestroyingARunningProcessKillsAndReapsIt) {
  weave::Loop loop;
  pid_t pid;
  {
    Process p = exec({"sleep", "100"}, pipes(true, true, true));
    pid = p.pid();
    EXPECT_TRUE(proc_exists(pid));
  }
  EXPECT_TRUE(reaped(pid));
}

TEST(Process, DestroyingAnExitedProcessReapsTheZombie) {
  weave::Loop loop;
  pid_t pid;
  {
    Process p = exec({"true"});
    pid = p.pid();
    wait_until_zombie(pid);
  }
  EXPECT_TRUE(reaped(pid));
}

TEST(Process, ManyProcessesLeaveNoFdsAndNoZombies) {
  weave::Loop loop;
  std::size_t before = open_fds();
  std::vector<pid_t> pids;
  loop.run_until_complete(loop.spawn([&] {
    for (int i = 0; i < 20; ++i) {
      Process p = exec_shell("echo " + std::to_string(i), pipes(true, true, true));
      pids.push_back(p.pid());
      EXPECT_EQ(p.communicate().out, std::to_string(i) + "\n");
    }
  }));
  EXPECT_EQ(open_fds(), before);
  for (pid_t pid : pids) EXPECT_TRUE(reaped(pid)) << pid;
}

TEST(Process, MoveKeepsTheChild) {
  in_fiber([] {
    Process a = exec_shell("exit 11");
    pid_t pid = a.pid();
    Process b = std::move(a);
    EXPECT_FALSE(a.valid());
    EXPECT_EQ(b.pid(), pid);
    Process c;
    c = std::move(b);
    EXPECT_EQ(c.wait(), 11);
  });
}

TEST(Process, MoveAssigningOverARunningProcessKillsIt) {
  weave::Loop loop;
  Process a = exec({"sleep", "100"});
  pid_t pid = a.pid();
  a = exec({"true"});
  EXPECT_TRUE(reaped(pid));
}

// ---- Without pidfds (kernels before 5.3): wait() polls -------------------------------------

struct PollingMode : ::testing::Test {
  bool previous = weave::net::detail::force_pid_polling(true);
  ~PollingMode() override { weave::net::detail::force_pid_polling(previous); }
};

TEST_F(PollingMode, WaitStillGetsTheStatus) {
  in_fiber([] {
    Process p = exec_shell("exit 12");
    EXPECT_EQ(p.wait(), 12);
    Process s = exec({"sleep", "100"});
    s.terminate();
    EXPECT_EQ(s.wait(), -SIGTERM);
  });
}

TEST_F(PollingMode, CancelledWaitDoesNotLoseTheExitStatus) {
  in_fiber([] {
    Process p = exec_shell("read line; exit 8", pipes(true, false));
    EXPECT_TRUE(weave::move_on_after(3ms, [&] { p.wait(); }));
    p.stdin_().write("go\n");
    EXPECT_EQ(p.wait(), 8);
  });
}

TEST_F(PollingMode, DestructorReapsToo) {
  weave::Loop loop;
  pid_t pid;
  {
    Process p = exec({"sleep", "100"});
    pid = p.pid();
  }
  EXPECT_TRUE(reaped(pid));
}

}  // namespace
