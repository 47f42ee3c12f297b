# dcim static timing and power (OpenSTA). Placeholders (at-sign names) are filled in by dcim.synth.flow.
read_liberty @{liberty}
read_verilog @{netlist}
link_design @{top}
create_clock -name clk -period @{period} [get_ports clk]
set inputs [list]
foreach p [get_ports *] {
  if {[get_property $p direction] == "input" && [get_name $p] != "clk"} { lappend inputs $p }
}
set_input_delay 0 -clock clk $inputs
set_output_delay 0 -clock clk [all_outputs]
puts "DCIM_WNS [format %.6f [sta::worst_slack -max]]"
report_checks -path_delay max -format full -digits 4 -fields {capacitance}
# worst path ending in each block's registers
set regs [all_registers -data_pins]
foreach {b inc exc} {@{blocks}} {
  set pins [list]
  foreach p $regs {
    set n [get_full_name $p]
    if {[string match $inc $n] && ($exc == "-" || ![string match $exc $n])} { lappend pins $p }
  }
  puts "DCIM_BLOCK $b [llength $pins]"
  if {[llength $pins]} { report_checks -to $pins -path_delay max -format end -digits 4 }
}
puts "DCIM_BLOCKS_END"
@{activity}
