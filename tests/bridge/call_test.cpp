// bridge::call: every callback shape, both error forms, deduced and named signatures.

#include "weave/bridge/call.hpp"
// (the header under test comes first: that proves it is self-contained)

#include <gtest/gtest.h>

#include <boost/system/error_code.hpp>
#include <exception>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <tuple>

#include "virtual_time.hpp"
#include "weave/cancel_scope.hpp"
#include "weave/run.hpp"
#include "weave/task.hpp"
#include "weave/this_fiber.hpp"

namespace {

using namespace std::chrono_literals;
namespace bridge = weave::bridge;

// A small "legacy library": each API completes on the loop, in a later turn (call_soon).
void get_number(int x, std::function<void(int)> done) {
  weave::Loop::current().call_soon([x, done] { done(x * 2); });
}
void ping(std::function<void()> done) {
  weave::Loop::current().call_soon([done] { done(); });
}
void lookup(std::string key, std::function<void(std::error_code, std::string)> done) {
  weave::Loop::current().call_soon([key, done] {
    if (key == "missing")
      done(std::make_error_code(std::errc::no_such_file_or_directory), "");
    else
      done({}, "value of " + key);
  });
}
void boost_lookup(int x, std::function<void(boost::system::error_code, int)> done) {
  weave::Loop::current().call_soon([x, done] {
    if (x < 0)
      done(boost::system::error_code(EINVAL, boost::system::system_category()), 0);
    else
      done({}, x + 1);
  });
}
void parse(std::string s, std::function<void(std::exception_ptr, int)> done) {
  weave::Loop::current().call_soon([s, done] {
    try {
      done(nullptr, std::stoi(s));
    } catch (...) {
      done(std::current_exception(), 0);
    }
  });
}
void split(std::string s, std::function<void(int, std::string, double)> done) {
  done(static_cast<int>(s.size()), s + "!", 0.5);  // synchronously, inside the call
}
void status_only(bool fail, std::function<void(std::error_code)> done) {
  done(fail ? std::make_error_code(std::errc::timed_out) : std::error_code());
}
void by_const_ref(const std::string& s, const std::function<void(const std::string&)>& done) {
  done(s + s);
}

struct Client {
  int base = 100;
  void add(int x, std::function<void(int)> done) const { done(base + x); }
};

TEST(BridgeCall, AValueCallbackReturnsTheValue) {
  EXPECT_EQ(weave::run([] { return bridge::call(get_number, 21); }), 42);
}

TEST(BridgeCall, AnEmptyCallbackReturnsVoid) {
  bool done = false;
  weave::run([&] {
    static_assert(std::is_void_v<decltype(bridge::call(ping))>);
    bridge::call(ping);
    done = true;
  });
  EXPECT_TRUE(done);
}

TEST(BridgeCall, SeveralValuesComeBackAsATuple) {
  auto [n, s, d] = weave::run([] { return bridge::call(split, std::string("abc")); });
  EXPECT_EQ(n, 3);
  EXPECT_EQ(s, "abc!");
  EXPECT_EQ(d, 0.5);
}

TEST(BridgeCall, ConstReferenceParametersAreStoredAsValues) {
  std::string r = weave::run([] { return bridge::call(by_const_ref, std::string("ab")); });
  EXPECT_EQ(r, "abab");
}

TEST(BridgeCall, AnErrorCodeIsThrownAsSystemError) {
  weave::run([] {
    EXPECT_EQ(bridge::call(lookup, std::string("k")), "value of k");
    try {
      bridge::call(lookup, std::string("missing"));
      ADD_FAILURE() << "no exception";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::no_such_file_or_directory);
    }
  });
}

TEST(BridgeCall, TheErrorCodeFormStoresTheErrorInstead) {
  weave::run([] {
    std::error_code ec = std::make_error_code(std::errc::io_error);  // cleared on success
    EXPECT_EQ(bridge::call(ec, lookup, std::string("k")), "value of k");
    EXPECT_FALSE(ec);
    std::string v = bridge::call(ec, lookup, std::string("missing"));
    EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
    EXPECT_EQ(v, "");  // what the callback passed
  });
}

TEST(BridgeCall, ABoostErrorCodeIsThrownAsStdSystemErrorAndKeptAsIsInTheEcForm) {
  weave::run([] {
    EXPECT_EQ(bridge::call(boost_lookup, 1), 2);
    try {
      bridge::call(boost_lookup, -1);
      ADD_FAILURE() << "no exception";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::errc::invalid_argument);
    }
    boost::system::error_code bec;
    bridge::call(bec, boost_lookup, -1);
    EXPECT_EQ(bec, boost::system::error_code(EINVAL, boost::system::system_category()));
    std::error_code sec;  // the other kind of code: converted
    bridge::call(sec, boost_lookup, -1);
    EXPECT_EQ(sec, std::errc::invalid_argument);
  });
}

TEST(BridgeCall, AnErrorCodeOnlyCallbackReturnsVoid) {
  weave::run([] {
    static_assert(std::is_void_v<decltype(bridge::call(status_only, false))>);
    bridge::call(status_only, false);
    EXPECT_THROW(bridge::call(status_only, true), std::system_error);
    std::error_code ec;
    bridge::call(ec, status_only, true);
    EXPECT_EQ(ec, std::errc::timed_out);
  });
}

TEST(BridgeCall, AnExceptionPtrIsRethrown) {
  weave::run([] {
    EXPECT_EQ(bridge::call(parse, std::string("17")), 17);
    EXPECT_THROW(bridge::call(parse, std::string("seventeen")), std::invalid_argument);
    std::error_code ec;  // the ec form does not swallow exceptions
    EXPECT_THROW(bridge::call(ec, parse, std::string("x")), std::invalid_argument);
  });
}

TEST(BridgeCall, AMemberFunctionTakesItsObjectFirst) {
  Client c;
  EXPECT_EQ(weave::run([&] { return bridge::call(&Client::add, c, 5); }), 105);
}

TEST(BridgeCall, ALambdaWithOneSignatureIsDeduced) {
  auto api = [](int a, int b, std::function<void(int)> done) { done(a + b); };
  EXPECT_EQ(weave::run([&] { return bridge::call(api, 2, 3); }), 5);
}

TEST(BridgeCall, ANamedSignatureServesTemplatesAndGenericLambdas) {
  weave::run([] {
    // The completion-handle form: any callable that is given the handle.
    int v = bridge::call<void(int)>(
        [](auto done) { weave::Loop::current().call_soon([done = std::move(done)] { done(7); }); });
    EXPECT_EQ(v, 7);
    auto generic_api = [](auto x, auto&& done) { done(x + 1); };
    EXPECT_EQ(bridge::call<void(long)>(generic_api, 41L), 42L);
  });
}

TEST(BridgeCall, AnExceptionFromTheApiItselfPropagatesAndALaterCompletionIsANoOp) {
  weave::run([] {
    std::function<void(int)> kept;
    auto failing = [&](std::function<void(int)> done) {
      kept = done;
      throw std::runtime_error("refused");
    };
    EXPECT_THROW(bridge::call(failing), std::runtime_error);
    ASSERT_TRUE(kept);
    kept(1);  // the waiter is gone: nothing happens
    kept = nullptr;
  });
}

TEST(BridgeCall, OutsideAFiberIsALogicError) {
  weave::Loop loop;
  EXPECT_THROW(bridge::call(get_number, 1), std::logic_error);
}

TEST(BridgeCall, IsACheckpointBeforeTheApiIsCalled) {
  int calls = 0;
  weave::run([&] {
    auto t = weave::spawn([&] {
      weave::current_task().cancel();
      return bridge::call<void(int)>([&](auto done) {
        ++calls;
        done(1);
      });
    });
    t.join();
    EXPECT_TRUE(t.cancelled());
  });
  EXPECT_EQ(calls, 0);
}

TEST(BridgeCall, OtherFibersRunWhileOneWaits) {
  std::vector<std::string> order;
  weave::run([&] {
    std::function<void(int)> pending;
    auto waiter = weave::spawn([&] {
      order.push_back("waiter starts");
      int v = bridge::call<void(int)>([&](auto done) { pending = std::move(done); });
      order.push_back("waiter got " + std::to_string(v));
    });
    auto other = weave::spawn([&] {
      order.push_back("other runs");
      pending(5);
      pending = nullptr;
    });
    waiter.join();
    other.join();
  });
  EXPECT_EQ(order, (std::vector<std::string>{"waiter starts", "other runs", "waiter got 5"}));
}

}  // namespace
