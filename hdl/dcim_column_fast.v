// dcim_column_fast: fast behavioural simulation view of one dcim compute-array column
// (weight storage + AND + column sum + en-gated pipeline), cycle-exact at its ports with
// the synthesizable Amaranth column (hdl/array.py: Column).
//
// Weights are kept as WB bit planes of ROWS bits (plane j = bit j of every word), so the
// column sum is sum over (slice bit i, weight bit j) of +-2^(i+j) * popcount(plane_j &
// xplane_i). The popcount is the 64-bit SWAR sequence, which GCC (-O2 and up, with
// -mpopcnt/-march=native) compiles to one popcnt per 64 rows. Plain Verilog-2005 (no
// $countones: Icarus -g2005 lacks it); no always @*: the sum is a procedural block with
// an explicit sensitivity list whose result starts at its exact time-0 value (0), and every
// register is initialised by an initial block.
module dcim_column_fast #(
  parameter ROWS = 64,
  parameter WB = 8,
  parameter SB = 1,
  parameter WSIGNED = 1,
  parameter ASIGNED = 1,
  parameter REGS = 0,
  parameter YBITS = 16
) (
  input clk,
  input rst,
  input [ROWS-1:0] wl,
  input [WB-1:0] wdata,
  input [ROWS*SB-1:0] x,
  input neg,
  input en,
  output signed [YBITS-1:0] y
);
  localparam integer NCH = (ROWS + 63) / 64;   // 64-bit chunks per plane

  // ---- storage: WB bit planes, plane j = bit j of every word (row k at bit j*ROWS+k)
  reg [WB*ROWS-1:0] planes;
  initial planes = {WB{ {ROWS{1'b0}} }};
  generate
    if (ROWS <= 64) begin : g_wmask
      // narrow planes: one masked update per plane (a few machine words)
      always @(posedge clk) begin : wr
        integer j;
        reg [WB*ROWS-1:0] nxt;
        if (|wl) begin
          for (j = 0; j < WB; j = j + 1)
            nxt[j*ROWS +: ROWS] = wdata[j] ? (planes[j*ROWS +: ROWS] | wl)
                                           : (planes[j*ROWS +: ROWS] & ~wl);
          planes <= nxt;
        end
      end
    end else begin : g_wloop
      // wide planes: a row loop, run only on write cycles (Verilator keeps it a loop)
      always @(posedge clk) begin : wr
        integer r, j;
        reg [WB*ROWS-1:0] nxt;
        if (|wl) begin
          nxt = planes;
          for (r = 0; r < ROWS; r = r + 1)
            if (wl[r])
              for (j = 0; j < WB; j = j + 1)
                nxt[j*ROWS + r] = wdata[j];
          planes <= nxt;
        end
      end
    end
  endgenerate

  // ---- sum: popcount(plane_j & xplane_i) weighted by 2^(i+j); weight bit WB-1 counts
  // negative if WSIGNED; slice bit SB-1 (sum 'hi') is negated when neg and ASIGNED.
  // A procedural block with an explicit sensitivity list (not always @*): 'tot' starts at
  // its initial value 0, which is exact while every weight is still 0, so y is right from
  // time 0 whether or not the block runs at time 0; every later change re-evaluates it.
  localparam integer NL = (ASIGNED != 0) ? SB - 1 : SB;  // slice bits with a fixed sign
  reg [63:0] tot;                   // S in 64-bit two's complement
  initial tot = 64'd0;
  always @(planes or x or neg) begin : sum
    integer i, j, c;
    reg [64*NCH-1:0] v;             // plane_j & xplane_i, zero-padded to whole chunks
    reg [63:0] a, cnt, lo, hi;
    lo = 64'd0;
    hi = 64'd0;
    for (i = 0; i < SB; i = i + 1)
      for (j = 0; j < WB; j = j + 1) begin
        v = {NCH{64'd0}};
        v[ROWS-1:0] = planes[j*ROWS +: ROWS] & x[i*ROWS +: ROWS];
        cnt = 64'd0;
        for (c = 0; c < NCH; c = c + 1) begin
          a = v[c*64 +: 64];
          a = a - ((a >> 1) & 64'h5555555555555555);
          a = (a & 64'h3333333333333333) + ((a >> 2) & 64'h3333333333333333);
          a = (a + (a >> 4)) & 64'h0f0f0f0f0f0f0f0f;
          cnt = cnt + ((a * 64'h0101010101010101) >> 56);  // popcount of the chunk
        end
        cnt = cnt << (i + j);
        if (i == NL) begin
          if ((WSIGNED != 0) && (j == WB - 1)) hi = hi - cnt;
          else hi = hi + cnt;
        end else begin
          if ((WSIGNED != 0) && (j == WB - 1)) lo = lo - cnt;
          else lo = lo + cnt;
        end
      end
    tot = ((ASIGNED != 0) && neg) ? lo - hi : lo + hi;
  end

  // ---- result in YBITS (the exact sum always fits)
  wire [YBITS-1:0] s;
  generate
    if (YBITS < 64) begin : g_trunc
      assign s = tot[YBITS-1:0];
      wire unused_hi = &{1'b0, tot[63:YBITS]};
    end else if (YBITS == 64) begin : g_eq
      assign s = tot;
    end else begin : g_ext
      assign s = {{(YBITS-64){tot[63]}}, tot};
    end
  endgenerate

  wire unused_pins = &{1'b0, rst, en};

  // ---- output: combinational or an en-gated delay line of REGS stages
  generate
    if (REGS == 0) begin : g_comb
      assign y = s;
    end else begin : g_pipe
      reg [REGS*YBITS-1:0] dl;
      initial dl = {REGS{ {YBITS{1'b0}} }};
      if (REGS == 1) begin : g_one
        always @(posedge clk)
          if (en) dl <= s;
      end else begin : g_many
        always @(posedge clk)
          if (en) dl <= {dl[(REGS-1)*YBITS-1:0], s};
      end
      assign y = dl[REGS*YBITS-1 -: YBITS];
    end
  endgenerate
endmodule
