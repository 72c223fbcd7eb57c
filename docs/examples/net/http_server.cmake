# http_server, driven by http_server_check.py: curl (its checks are skipped when curl is not
# installed), raw sockets, and the program's own --get client mode over a scratch directory
# (files, a directory, a 3 MiB file, symlinks in and out, escapes), then SIGINT or SIGTERM with
# a client still connected must end the program with status 0.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  foreach(sig INT TERM)
    add_test(NAME example_http_server_${sig}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/http_server_check.py
        $<TARGET_FILE:http_server> --signal ${sig})
    set_tests_properties(example_http_server_${sig} PROPERTIES LABELS example TIMEOUT 120)
  endforeach()
  # A short real load (http_server_load.py: ab -k -n 2000 -c 20 and wrk -t2 -c50 -d1s, about
  # 2 s): every request answered with a 2xx, the server still up, then stopped by SIGTERM.
  # Skipped (exit 77) when neither wrk nor ab is installed. It loads both cores, so it runs
  # alone rather than beside timing-sensitive tests.
  add_test(NAME example_http_server_load
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/http_server_load.py
      $<TARGET_FILE:http_server>)
  set_tests_properties(example_http_server_load PROPERTIES LABELS example TIMEOUT 120
    SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
else()
  message(STATUS "weave: python3 not found; the http_server tests are skipped")
endif()
# Bad arguments: a usage message and status 2.
add_test(NAME example_http_server_usage COMMAND http_server --port 70000)
set_tests_properties(example_http_server_usage PROPERTIES WILL_FAIL TRUE)
# http_server_api: the tour of docs/http.md (a server and a client on one loop); its output
# names each call's result. The second test keeps every ```cpp block of docs/http.md a piece of
# http_server_api.cpp or http_server.cpp, so that the page shows code that is compiled and run.
weave_example_test(http_server_api EXPECT_REGEX
  "GET /hello +200 OK, 6 bytes: hello\nPOST /echo.x=1 +200 OK, 7 bytes: ..n..1.\n  Content-Type application/json, X-Query x=1\n  connections opened: 1, idle in the pool: 1\nPUT /echo +404 Not Found.*GET /old +301 Moved Permanently.*GET /old, following +200 OK, 6 bytes: hello\nGET /count +200 OK, 6 bytes: 0 1 2 \nGET /slow under fail_after.100ms.: TimeoutError\nGET /slow under 5 s +200 OK, 8 bytes: finally\nGET with a 10 kB field +431 .*POST of 100 kB +413 .*port 1: std::system_error: Connection refused\nhttps: std::invalid_argument: .*max_body_bytes = 4: http::LimitError: .*connections opened by the client: 3\n$")
if(Python3_Interpreter_FOUND)
  add_test(NAME example_http_docs_match_sources
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/http_server_docs_check.py
      ${PROJECT_SOURCE_DIR}/docs/http.md ${CMAKE_CURRENT_SOURCE_DIR}/http_server_api.cpp
      ${CMAKE_CURRENT_SOURCE_DIR}/http_server.cpp)
  set_tests_properties(example_http_docs_match_sources PROPERTIES LABELS example)
endif()
