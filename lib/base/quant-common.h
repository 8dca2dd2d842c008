/* quant-common.h - bitsandbytes' code books: NF4, FP4 and the 8-bit
 * dynamic map of double quantization.
 *
 * Plain C99 that nvcc also compiles (TK_QHD marks host+device functions),
 * so the CPU quantizer and CUDA dequantization kernels share one table.
 * Values are bitsandbytes.functional.get_4bit_type() as fp32 (FP4 is its
 * list divided by 12 in fp32), written as hex floats; the decision bounds
 * are the fp32 midpoints (a + b) / 2 of neighbouring codes in value order,
 * as bitsandbytes' CPU quantize_4bit computes them.  test-quant checks every
 * table against tests/fixtures/quant/bounds.txt, which
 * tests/parity/gen-quant-fixtures.py writes from bitsandbytes itself.
 */
#ifndef TK_QUANT_COMMON_H
#define TK_QUANT_COMMON_H

#ifdef __CUDACC__
#define TK_QHD __host__ __device__ static inline
#define TK_QCONST __device__ __constant__ static const
#else
#define TK_QHD static inline
#define TK_QCONST static const
#endif

/* Dequantization value of each 4-bit code (index = code). */
TK_QCONST float tk_nf4_code[16] = {
	-0x1p+0f,         -0x1.647362p-1f, -0x1.0cd66p-1f,  -0x1.94654p-2f,
	-0x1.23449ap-2f,  -0x1.7a6a7ep-3f, -0x1.74f0e2p-4f, 0x0p+0f,
	0x1.45f5fep-4f,   0x1.4995c6p-3f,  0x1.f809bap-3f,  0x1.5a0674p-2f,
	0x1.c3497p-2f,    0x1.200f56p-1f,  0x1.722766p-1f,  0x1p+0f,
};

TK_QCONST float tk_fp4_code[16] = {
	0x0p+0f,          0x1.555556p-8f,  0x1.555556p-1f,  0x1p+0f,
	0x1.555556p-2f,   0x1p-1f,         0x1.555556p-3f,  0x1p-2f,
	0x0p+0f,          -0x1.555556p-8f, -0x1.555556p-1f, -0x1p+0f,
	-0x1.555556p-2f,  -0x1p-1f,        -0x1.555556p-3f, -0x1p-2f,
};

/* Codes in ascending value order: bucket i (between bound i-1 and bound
 * i) maps to code order[i].  For FP4 this is torch.argsort's order on the
 * table above, whose two zeros (codes 0 and 8) both sit at the middle. */
TK_QCONST unsigned char tk_nf4_order[16] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
};

TK_QCONST unsigned char tk_fp4_order[16] = {
	11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3,
};

/* The 15 decision bounds: bound i = (code[order[i]] + code[order[i+1]]) / 2
 * in fp32. */
TK_QCONST float tk_nf4_bound[15] = {
	-0x1.b239bp-1f,   -0x1.38a4ep-1f,  -0x1.d709p-2f,   -0x1.5bd4ecp-2f,
	-0x1.e079d8p-3f,  -0x1.1a7178p-3f, -0x1.74f0e2p-5f, 0x1.45f5fep-5f,
	0x1.ec90c4p-4f,   0x1.a0cfcp-3f,   0x1.2b05a8p-2f,  0x1.8ea7f2p-2f,
	0x1.00da08p-1f,   0x1.491b5ep-1f,  0x1.b913b4p-1f,
};

TK_QCONST float tk_fp4_bound[15] = {
	-0x1.aaaaacp-1f,  -0x1.2aaaacp-1f, -0x1.aaaaacp-2f, -0x1.2aaaacp-2f,
	-0x1.aaaaacp-3f,  -0x1.6p-4f,      -0x1.555556p-9f, 0x0p+0f,
	0x1.555556p-9f,   0x1.6p-4f,       0x1.aaaaacp-3f,  0x1.2aaaacp-2f,
	0x1.aaaaacp-2f,   0x1.2aaaacp-1f,  0x1.aaaaacp-1f,
};

/* bitsandbytes' 8-bit dynamic map (create_dynamic_map(): signed, 7
 * exponent bits), sorted ascending: the code book that double quantization
 * uses for the absmax values. */
TK_QCONST float tk_dynamic_code[256] = {
	-0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f,
	-0x1.df999ap-1f, -0x1.d86666p-1f, -0x1.d13334p-1f, -0x1.cap-1f,
	-0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f,
	-0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f,
	-0x1.893334p-1f, -0x1.82p-1f, -0x1.7accccp-1f, -0x1.73999ap-1f,
	-0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56ccccp-1f,
	-0x1.4f999ap-1f, -0x1.486668p-1f, -0x1.413334p-1f, -0x1.3ap-1f,
	-0x1.32ccccp-1f, -0x1.2b999ap-1f, -0x1.246668p-1f, -0x1.1d3334p-1f,
	-0x1.16p-1f, -0x1.0eccccp-1f, -0x1.079998p-1f, -0x1.006666p-1f,
	-0x1.f26664p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f,
	-0x1.b8ccccp-2f, -0x1.aa6666p-2f, -0x1.9cp-2f, -0x1.8d9998p-2f,
	-0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626666p-2f, -0x1.54p-2f,
	-0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f,
	-0x1.0cp-2f, -0x1.fb3332p-3f, -0x1.de6666p-3f, -0x1.c1999ap-3f,
	-0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3334p-3f, -0x1.4e6666p-3f,
	-0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f,
	-0x1.93d70ap-4f, -0x1.8851eep-4f, -0x1.7ccccep-4f, -0x1.7147aep-4f,
	-0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f,
	-0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f,
	-0x1.09999ap-4f, -0x1.fc28f6p-5f, -0x1.e51ebap-5f, -0x1.ce147ap-5f,
	-0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f,
	-0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c29p-5f,
	-0x1.fd70a4p-6f, -0x1.cf5c2ap-6f, -0x1.a147aep-6f, -0x1.733334p-6f,
	-0x1.451ebap-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
	-0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f,
	-0x1.e978d4p-8f, -0x1.c49ba6p-8f, -0x1.9fbe76p-8f, -0x1.7ae148p-8f,
	-0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
	-0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f,
	-0x1.eecbfep-11f, -0x1.b3d07cp-11f, -0x1.78d5p-11f, -0x1.3dd982p-11f,
	-0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
	-0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f,
	-0x1.040bfep-17f, -0x1.b43528p-19f, -0x1.27476ep-21f, 0x0p+0f,
	0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
	0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f,
	0x1.19ce0ap-12f, 0x1.8fc506p-12f, 0x1.02de02p-11f, 0x1.3dd982p-11f,
	0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
	0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f,
	0x1.0c49bap-8f, 0x1.3126e8p-8f, 0x1.56041ap-8f, 0x1.7ae148p-8f,
	0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
	0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f,
	0x1.d1eb86p-7f, 0x1.170a3ep-6f, 0x1.451ebap-6f, 0x1.733334p-6f,
	0x1.a147aep-6f, 0x1.cf5c2ap-6f, 0x1.fd70a4p-6f, 0x1.15c29p-5f,
	0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f,
	0x1.88f5c2p-5f, 0x1.ap-5f, 0x1.b70a3ep-5f, 0x1.ce147ap-5f,
	0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
	0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f,
	0x1.4eb854p-4f, 0x1.5a3d7p-4f, 0x1.65c29p-4f, 0x1.7147aep-4f,
	0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
	0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f,
	0x1.6b3334p-3f, 0x1.88p-3f, 0x1.a4ccccp-3f, 0x1.c1999ap-3f,
	0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f,
	0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f,
	0x1.626666p-2f, 0x1.70ccccp-2f, 0x1.7f3334p-2f, 0x1.8d9998p-2f,
	0x1.9cp-2f, 0x1.aa6666p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
	0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26664p-2f, 0x1.006666p-1f,
	0x1.079998p-1f, 0x1.0eccccp-1f, 0x1.16p-1f, 0x1.1d3334p-1f,
	0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f,
	0x1.413334p-1f, 0x1.486668p-1f, 0x1.4f999ap-1f, 0x1.56ccccp-1f,
	0x1.5ep-1f, 0x1.653334p-1f, 0x1.6c6668p-1f, 0x1.73999ap-1f,
	0x1.7accccp-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
	0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3334p-1f,
	0x1.b46666p-1f, 0x1.bb999ap-1f, 0x1.c2ccccp-1f, 0x1.cap-1f,
	0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f,
	0x1.eep-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1p+0f,

};

/* Bucket of a scaled value s in [-1, 1] as torch.bucketize(s, bound)
 * (right=False): the number of bounds strictly below s, so a value exactly
 * on a bound goes to the lower bucket.  Branch-free binary search. */
TK_QHD unsigned tk_q4_bucket(const float *bound, float s)
{
	unsigned i = 0;
	i += (bound[i + 7] < s) ? 8 : 0;
	i += (bound[i + 3] < s) ? 4 : 0;
	i += (bound[i + 1] < s) ? 2 : 0;
	i += (bound[i] < s) ? 1 : 0;
	return i;
}

#endif
