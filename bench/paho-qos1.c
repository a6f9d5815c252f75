/* SPDX-License-Identifier: MIT */
/*
 * The baseline for bench/run-bench.sh: a plain Paho MQTTAsync client
 * publishing COUNT QoS 1 messages of SIZE bytes with at most INFLIGHT
 * awaiting PUBACK, timed from the first publish to the last PUBACK.
 *
 *   nl-bench-paho HOST PORT COUNT SIZE INFLIGHT
 *
 * Prints one line: "paho_qos1 messages=N seconds=S rate=R/s". A bench
 * tool, not a daemon: its main thread waits on a condition variable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTAsync.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long acked, failed, inflight;
static int connected; /* 1 ok, -1 failed */

static void on_connect(void *ctx, MQTTAsync_successData *r)
{
	pthread_mutex_lock(&lock);
	connected = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData *r)
{
	pthread_mutex_lock(&lock);
	connected = -1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

static void on_pub(void *ctx, MQTTAsync_successData *r)
{
	pthread_mutex_lock(&lock);
	acked++;
	inflight--;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

static void on_pub_fail(void *ctx, MQTTAsync_failureData *r)
{
	pthread_mutex_lock(&lock);
	failed++;
	inflight--;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for pred with a deadline; returns 0 or -ETIMEDOUT. Lock held. */
static int wait_until(int (*pred)(long), long arg, double seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)seconds;
	while (!pred(arg))
		if (pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT)
			return pred(arg) ? 0 : -ETIMEDOUT;
	return 0;
}

static int is_connected(long unused)
{
	return connected != 0;
}

static int window_open(long max)
{
	return inflight < max;
}

static int all_done(long count)
{
	return acked + failed >= count;
}

int main(int argc, char **argv)
{
	MQTTAsync client;
	MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer;
	MQTTAsync_createOptions cro = MQTTAsync_createOptions_initializer;
	char uri[128], *payload;
	long count, size, window;
	double t0, t1;
	int rc;

	if (argc != 6) {
		fprintf(stderr, "usage: %s HOST PORT COUNT SIZE INFLIGHT\n", argv[0]);
		return 2;
	}
	snprintf(uri, sizeof(uri), "tcp://%s:%s", argv[1], argv[2]);
	count = strtol(argv[3], NULL, 10);
	size = strtol(argv[4], NULL, 10);
	window = strtol(argv[5], NULL, 10);
	if (count < 1 || size < 1 || size > 1000000 || window < 1 || window > 65000) {
		fprintf(stderr, "nl-bench-paho: bad arguments\n");
		return 2;
	}
	payload = malloc((size_t)size);
	if (!payload)
		return 1;
	memset(payload, 'x', (size_t)size);
	cro.maxBufferedMessages = (int)window + 10;
	rc = MQTTAsync_createWithOptions(&client, uri, "nl-bench-paho", MQTTCLIENT_PERSISTENCE_NONE,
					 NULL, &cro);
	if (rc != MQTTASYNC_SUCCESS)
		return 1;
	co.cleansession = 1;
	co.keepAliveInterval = 30;
	co.maxInflight = (int)window;
	co.onSuccess = on_connect;
	co.onFailure = on_connect_fail;
	if (MQTTAsync_connect(client, &co) != MQTTASYNC_SUCCESS)
		return 1;
	pthread_mutex_lock(&lock);
	if (wait_until(is_connected, 0, 10) < 0 || connected < 0) {
		pthread_mutex_unlock(&lock);
		fprintf(stderr, "nl-bench-paho: cannot connect to %s\n", uri);
		return 1;
	}
	pthread_mutex_unlock(&lock);

	t0 = now_s();
	for (long i = 0; i < count; i++) {
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		MQTTAsync_message m = MQTTAsync_message_initializer;

		pthread_mutex_lock(&lock);
		if (wait_until(window_open, window, 30) < 0) {
			pthread_mutex_unlock(&lock);
			fprintf(stderr, "nl-bench-paho: no PUBACK for 30 s\n");
			return 1;
		}
		inflight++;
		pthread_mutex_unlock(&lock);
		ro.onSuccess = on_pub;
		ro.onFailure = on_pub_fail;
		m.payload = payload;
		m.payloadlen = (int)size;
		m.qos = 1;
		rc = MQTTAsync_sendMessage(client, "nl-bench/paho", &m, &ro);
		if (rc != MQTTASYNC_SUCCESS) {
			fprintf(stderr, "nl-bench-paho: publish refused: %d\n", rc);
			return 1;
		}
	}
	pthread_mutex_lock(&lock);
	rc = wait_until(all_done, count, 60);
	pthread_mutex_unlock(&lock);
	t1 = now_s();
	printf("paho_qos1 messages=%ld failed=%ld seconds=%.3f rate=%.0f/s%s\n", acked, failed,
	       t1 - t0, (double)acked / (t1 - t0), rc < 0 ? " (timed out)" : "");
	MQTTAsync_destroy(&client);
	free(payload);
	return rc < 0 || failed ? 1 : 0;
}
