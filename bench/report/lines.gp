# One figure of docs/bench.md: median with min-max error bars against concurrency, one line per
# implementation, log-scaled x. Called by make_report.py as
#   gnuplot -e "datafile='...csv'; outfile='...svg'; series=N; ttl='...'; ylab='...'; ylog=0|1" lines.gp
# The CSV: x, then (median, min, max) per series; the header names each series on its median.
set terminal svg size 760,440 dynamic enhanced font "sans,12" background "white"
set output outfile
set datafile separator ","
set datafile missing "NaN"
set title ttl noenhanced
set xlabel xlab
set ylabel ylab
set logscale x 10
if (ylog) set logscale y 10
set grid xtics ytics mytics lc rgb "#dddddd"
set key outside right top box noenhanced
set format x "%.0s%c"
set xrange [*:*] noextend
set offsets graph 0.05, graph 0.05, graph 0.05, 0
plot for [i=0:series-1] datafile using 1:(column(2+3*i)):(column(3+3*i)):(column(4+3*i)) \
     with yerrorlines lw 2 pt (i + 4) ps 1.0 title columnhead(2+3*i)
