/*
 * fma_peak — the machine's f32 FMA peak: 12 independent chains of vector fused multiply-adds
 * per thread (enough to cover the FMA latency on both FMA ports), on 1 and on 2 threads.
 * 16-lane (zmm) vectors where the compiler targets AVX-512, else 8-lane (ymm, AVX2 + FMA).
 * flowc-bench compiles it with `cc -O2 -march=native -pthread`. A peak is the best the machine
 * does, and a shared VM's second vCPU is sometimes busy for a second or more (a single 2-thread
 * run measured 125 GFLOP/s where others measure 198): each thread count runs REPEATS times,
 * alternating, and prints "N threads: BEST GFLOP/s (slowest of REPEATS: S)".
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#if defined(__AVX512F__)
typedef __m512 vec;
enum { LANES = 16 };
#define SPLAT _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define STORE _mm512_storeu_ps
#elif defined(__AVX2__) && defined(__FMA__)
typedef __m256 vec;
enum { LANES = 8 };
#define SPLAT _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define STORE _mm256_storeu_ps
#else
#error "fma_peak needs AVX2 and FMA, or AVX-512"
#endif
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
float sink[2 * LANES];   /* read at the end, so the chains are not dead code */
static void *run(void *arg){
  long n=*(long*)arg;
  vec m=SPLAT(1.0000001f), c=SPLAT(1e-7f);
  vec a0=SPLAT(0),a1=SPLAT(1),a2=SPLAT(2),a3=SPLAT(3),a4=SPLAT(4),a5=SPLAT(5),a6=SPLAT(6),a7=SPLAT(7),a8=SPLAT(8),a9=SPLAT(9),a10=SPLAT(10),a11=SPLAT(11);
  for(long i=0;i<n;i++){
    a0=FMA(a0,m,c);a1=FMA(a1,m,c);a2=FMA(a2,m,c);a3=FMA(a3,m,c);a4=FMA(a4,m,c);a5=FMA(a5,m,c);
    a6=FMA(a6,m,c);a7=FMA(a7,m,c);a8=FMA(a8,m,c);a9=FMA(a9,m,c);a10=FMA(a10,m,c);a11=FMA(a11,m,c);
  }
  vec s=ADD(ADD(ADD(a0,a1),ADD(a2,a3)),ADD(ADD(a4,a5),ADD(a6,a7)));
  s=ADD(s,ADD(ADD(a8,a9),ADD(a10,a11)));
  STORE(sink + (arg == 0 ? 0 : LANES), s); return 0;}
enum { REPEATS = 5 };
/* GFLOP/s of one run on `threads` threads */
static double measure(int threads){ long n=20000000; pthread_t t[2]; long args[2]={n,n};
  double s=now(); for(int i=0;i<threads;i++) pthread_create(&t[i],0,run,&args[i]); for(int i=0;i<threads;i++) pthread_join(t[i],0);
  return threads*n*12.0*LANES*2/(now()-s)/1e9; }
int main(){ double best[3]={0,0,0}, slowest[3]={1e30,1e30,1e30};
  for(int r=0;r<REPEATS;r++) for(int threads=1;threads<=2;threads++){ double g=measure(threads);
    if(g>best[threads]) best[threads]=g; if(g<slowest[threads]) slowest[threads]=g; }
  for(int threads=1;threads<=2;threads++) printf("%d threads: %.1f GFLOP/s (slowest of %d: %.1f)\n", threads, best[threads], REPEATS, slowest[threads]);
  if (sink[0] + sink[LANES] == 0.5f) puts(""); }
