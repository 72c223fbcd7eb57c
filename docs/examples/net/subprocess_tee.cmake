# subprocess_tee: tee echoes two lines, the logger fiber logs them in order, is cancelled,
# tee is terminated (returncode -15); then tr upper-cases a line through communicate().
weave_example_test(subprocess_tee
  EXPECT_REGEX "^started tee \\(pid [0-9]+\\)\n\\[logger \\+[0-9.]+ s\\] Hello\n\\[logger \\+[0-9.]+ s\\] World\nlogger cancelled: yes\ntee ended with returncode -15 \\(terminated by SIGTERM\\)\ntr answered: HELLO FROM A WEAVE FIBER\ntr ended with returncode 0\n$")
