# The results table of tools/bench.sh and tools/bench-net.sh (one program
# for both, so the two tables keep one shape):
#
#   awk -v res=DIR [-v summary=FILE] -f tools/bench-table.awk \
#       DIR/peers.tsv DIR/runs.tsv|DIR/runs.txt DIR/figures.txt >table.md
#
# peers.tsv: name TAB label TAB version TAB what it runs (empty: skipped,
#   no column) [TAB the chart's short label]; one column a peer, in order.
# runs.tsv / runs.txt: a run that took place a line: name [TAB its N].
# figures.txt: name|run|key|unit|lower or higher (is better)|label; a row
#   for each figure whose run took place; {N} and {IDEAL} (N/100 rounds of
#   1 ms) in the label are filled in from the run's N.
# Each cell is the median of the values "key: value ..." found in
# DIR/<run>.<peer>.<rep>.out, with the range when there are several; then
# the best peer other than tulip and tulip's ratio to it. With summary,
# every cell is also written there as one TAB-separated line (figure,
# peer, label, median, min, max, unit|better|row label, short label) for
# the chart.
BEGIN { FS = "\t" }
FILENAME ~ /peers\.tsv$/ { if ($4 != "") { np++; peer[np] = $1; label[$1] = $2; short[$1] = $5 }; next }
FILENAME ~ /runs\.(tsv|txt)$/ { ran[$1] = 1; N[$1] = $2; next }
FILENAME ~ /figures\.txt$/ {
    split($0, f, "|"); if (!(f[2] in ran)) next
    nf++; fig[nf] = f[1]; frun[nf] = f[2]; fkey[nf] = f[3]; funit[nf] = f[4]
    fbetter[nf] = f[5]; flabel[nf] = f[6]
    next
}
function commas(x,   s, neg) {
    s = sprintf("%d", x); neg = ""
    if (s ~ /^-/) { neg = "-"; s = substr(s, 2) }
    while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s)
    return neg s
}
function fmt(x) {
    if (x >= 100) return commas(x + 0.5)
    if (x >= 10) return sprintf("%.1f", x)
    return sprintf("%.2f", x)
}
function sortn(a, k,   i, j, t) {
    for (i = 2; i <= k; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
}
# The values of key over every rep of run by p: sets MED, LO, HI, CNT;
# 0 if there is none.
function collect(run, p, key,   file, line, v, a, k, rep) {
    k = 0
    for (rep = 1; rep <= 100; rep++) {
        file = res "/" run "." p "." rep ".out"
        while ((getline line < file) > 0)
            if (index(line, key ": ") == 1) {
                v = substr(line, length(key) + 3); sub(/ .*/, "", v); a[++k] = v + 0
            }
        close(file)
    }
    if (k == 0) return 0
    sortn(a, k)
    MED = (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
    LO = a[1]; HI = a[k]; CNT = k
    return 1
}
END {
    printf "| figure | unit | lower/higher is better |"
    for (i = 1; i <= np; i++) printf " %s |", label[peer[i]]
    printf " best peer | tulip/best |\n|---|---|---|"
    for (i = 1; i <= np; i++) printf "---|"
    printf "---|---|\n"
    for (j = 1; j <= nf; j++) {
        n = N[frun[j]]; l = flabel[j]
        if (n != "") {
            gsub(/\{N\}/, commas(n), l); gsub(/\{IDEAL\}/, sprintf("%.2f", n / 100 * 0.001), l)
        }
        printf "| %s | %s | %s |", l, funit[j], fbetter[j]
        best = ""; bestv = 0; tv = ""
        for (i = 1; i <= np; i++) {
            p = peer[i]
            if (!collect(frun[j], p, fkey[j])) { printf " - |"; continue }
            cell = fmt(MED)
            if (CNT > 1) cell = cell " (" fmt(LO) "-" fmt(HI) ")"
            printf " %s |", cell
            if (summary != "")
                printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", fig[j], p, label[p], MED, LO, HI, funit[j] "|" fbetter[j] "|" l, short[p] > summary
            if (p == "tulip") { tv = MED; continue }
            if (best == "" || (fbetter[j] == "lower" ? MED < bestv : MED > bestv)) { best = p; bestv = MED }
        }
        if (best == "" || tv == "" || bestv == 0) { printf " - | - |\n"; continue }
        r = tv / bestv
        printf " %s | %sx |\n", label[best], (r >= 10) ? sprintf("%.0f", r) : sprintf("%.2f", r)
    }
}
