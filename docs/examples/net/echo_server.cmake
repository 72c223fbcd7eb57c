# echo_server, both modes, driven as a real client would (echo_server_check.py): many clients,
# a 1 MiB payload, a half-close and a reset, then SIGINT or SIGTERM with a client still
# connected must close it and end the program with status 0.
find_package(Python3 COMPONENTS Interpreter QUIET)
if(Python3_Interpreter_FOUND)
  foreach(mode fiber protocol)
    foreach(sig INT TERM)
      add_test(NAME example_echo_server_${mode}_${sig}
        COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/echo_server_check.py
          $<TARGET_FILE:echo_server> --mode ${mode} --signal ${sig})
      set_tests_properties(example_echo_server_${mode}_${sig} PROPERTIES LABELS example
        TIMEOUT 120)
    endforeach()
  endforeach()
else()
  message(STATUS "weave: python3 not found; the echo_server tests are skipped")
endif()
# --demo: both servers on one loop with 100 fiber clients each, then a real SIGINT.
weave_example_test(echo_server ARGS --demo
  EXPECT_REGEX "fiber server: 100 clients, 10 lines each: 1000 of 1000 lines echoed\nprotocol server: 100 clients, 10 lines each: 1000 of 1000 lines echoed\nsending SIGINT to this process...\nSIGINT: both servers stopped after serving 200 connections\n$")
