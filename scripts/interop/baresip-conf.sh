#!/bin/sh
# baresip-conf.sh DIR SIP_PORT RTP_LO RTP_HI CTRL_PORT TONE_HZ 'ACCOUNT-LINE' [NETIF]
# Writes a baresip 1.0 config dir that keeps everything on loopback: plays a sine of
# TONE_HZ (ausine), records what it hears into DIR/rec (sndfile: *-dec.wav), no sound card
# (ALSA "null"), controlled over ctrl_tcp on 127.0.0.1:CTRL_PORT (see bsctl.py).
set -e
d=$1 sip=$2 lo=$3 hi=$4 ctrl=$5 hz=$6 acct=$7 netif=${8:-lo}
mkdir -p "$d/rec"
cat >"$d/config" <<CFG
poll_method		epoll
sip_listen		127.0.0.1:$sip
net_interface		$netif
call_local_timeout	120
call_max_calls		4
audio_player		alsa,null
audio_alert		alsa,null
audio_source		ausine,$hz
ausrc_srate		48000
ausrc_channels		2
audio_buffer		20-160
rtp_ports		$lo-$hi
rtcp_mux		no
jitter_buffer_delay	5-10
module_path		/usr/lib/baresip/modules
module			g711.so
module			alsa.so
module			ausine.so
module			sndfile.so
module_tmp		uuid.so
module_tmp		account.so
module_app		menu.so
module_app		ctrl_tcp.so
ctrl_tcp_listen		127.0.0.1:$ctrl
snd_path		$d/rec
CFG
printf '%s\n' "$acct" >"$d/accounts"
: >"$d/contacts"
