/* rng.h - splitmix64's parts, for the hashes and streams that must give
 * the same numbers on every machine and thread count (tk_splitmix64 in
 * tk.h is the generator built from them). */
#ifndef TK_RNG_H
#define TK_RNG_H

#include <stdint.h>

#include "base/math-common.h"

/* splitmix64's increment (2^64 / the golden ratio, odd). */
#define TK_SPLITMIX64_GAMMA 0x9e3779b97f4a7c15ULL

/* splitmix64's finalizer: a bijective mix of the 64 bits of z. */
TK_HD uint64_t tk_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The value splitmix64 returns from state x (x advanced by the gamma, then
 * mixed), as a stateless hash of x: a bijection. */
TK_HD uint64_t tk_splitmix64_hash(uint64_t x)
{
	return tk_mix64(x + TK_SPLITMIX64_GAMMA);
}

/* Element i of the uniform noise stream key in [-mag, mag), as torch's
 * uniform_(-mag, mag) forms it (from + (to - from) * u) from a 24-bit u
 * hashed out of (key, i): the same floats on every backend, machine and
 * thread count. */
TK_HD float tk_noise_uniform(uint64_t key, uint64_t i, float mag)
{
	float u = (float)(tk_mix64(key + i * TK_SPLITMIX64_GAMMA) >> 40) * 0x1p-24f;
	return -mag + (mag + mag) * u;
}

#endif
