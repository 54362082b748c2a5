/*
 * fma_peak — the machine's f32 FMA peak: 12 independent chains of 16-lane fused multiply-adds
 * per thread (enough to cover the FMA latency), on 1 and on 2 threads. flowc-bench compiles it
 * with `cc -O2 -mavx512f -pthread` when the CPU has AVX-512 and prints "threads GFLOP/s" lines.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
static float sink[2];
static void *run(void *arg){
  long n=*(long*)arg;
  __m512 m=_mm512_set1_ps(1.0000001f), c=_mm512_set1_ps(1e-7f);
  __m512 a0=_mm512_set1_ps(0),a1=_mm512_set1_ps(1),a2=_mm512_set1_ps(2),a3=_mm512_set1_ps(3),a4=_mm512_set1_ps(4),a5=_mm512_set1_ps(5),a6=_mm512_set1_ps(6),a7=_mm512_set1_ps(7),a8=_mm512_set1_ps(8),a9=_mm512_set1_ps(9),a10=_mm512_set1_ps(10),a11=_mm512_set1_ps(11);
  for(long i=0;i<n;i++){
    a0=_mm512_fmadd_ps(a0,m,c);a1=_mm512_fmadd_ps(a1,m,c);a2=_mm512_fmadd_ps(a2,m,c);a3=_mm512_fmadd_ps(a3,m,c);a4=_mm512_fmadd_ps(a4,m,c);a5=_mm512_fmadd_ps(a5,m,c);
    a6=_mm512_fmadd_ps(a6,m,c);a7=_mm512_fmadd_ps(a7,m,c);a8=_mm512_fmadd_ps(a8,m,c);a9=_mm512_fmadd_ps(a9,m,c);a10=_mm512_fmadd_ps(a10,m,c);a11=_mm512_fmadd_ps(a11,m,c);
  }
  __m512 s=_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0,a1),_mm512_add_ps(a2,a3)),_mm512_add_ps(_mm512_add_ps(a4,a5),_mm512_add_ps(a6,a7)));
  s=_mm512_add_ps(s,_mm512_add_ps(_mm512_add_ps(a8,a9),_mm512_add_ps(a10,a11)));
  sink[0]+=_mm512_reduce_add_ps(s); return 0;}
int main(){ for(int threads=1;threads<=2;threads++){ long n=50000000; pthread_t t[2]; long args[2]={n,n};
  double s=now(); for(int i=0;i<threads;i++) pthread_create(&t[i],0,run,&args[i]); for(int i=0;i<threads;i++) pthread_join(t[i],0);
  double e=now()-s; printf("%d threads: %.1f GFLOP/s\n", threads, threads*n*12.0*16*2/e/1e9);} }
