# dcim power for one workload's activity (sourced by sta.tcl at the clock it sets).
# Placeholders (at-sign names) are filled in by dcim.synth.flow.
# (no -global: in OpenSTA 2.0.17 a global activity overrides every pin's own)
source @{activity_file}
puts "DCIM_POWER_BEGIN @{workload}"
report_power -digits 9
puts "DCIM_POWER_END @{workload}"
# every leaf cell's power, for the per-block sums (a hierarchical instance reports 0)
report_power -instances [get_cells -hierarchical *] -digits 9 > power_instances_@{workload}.txt
