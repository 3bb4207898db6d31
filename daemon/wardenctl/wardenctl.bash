# SPDX-License-Identifier: MIT
# bash completion for wardenctl (installed as
# /usr/share/bash-completion/completions/wardenctl). Cell names and
# operation ids come from the daemon itself (`wardenctl cells -o name`),
# through the same --socket/--url/--token-file as the command line.

_wardenctl_daemon_args() {
	local i
	for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
		case "${COMP_WORDS[i]}" in
		-s | --socket | -u | --url | --token-file | --cacert)
			printf '%s\n%s\n' "${COMP_WORDS[i]}" "${COMP_WORDS[i + 1]}"
			;;
		esac
	done
}

_wardenctl_list() {
	local -a args
	mapfile -t args < <(_wardenctl_daemon_args)
	"${COMP_WORDS[0]}" "${args[@]}" --timeout 2 "$@" -o name 2>/dev/null
}

_wardenctl() {
	local cur prev words=() i
	cur="${COMP_WORDS[COMP_CWORD]}"
	prev="${COMP_WORDS[COMP_CWORD - 1]}"

	case "$prev" in
	-o | --output)
		if [[ " ${COMP_WORDS[*]} " == *" export "* ]]; then
			COMPREPLY=($(compgen -f -- "$cur"))
		else
			COMPREPLY=($(compgen -W "json yaml wide name" -- "$cur"))
		fi
		return
		;;
	-s | --socket | --token-file | --cacert | --cell | --kernel | --dtb | --initrd | --write-dtb)
		COMPREPLY=($(compgen -f -- "$cur"))
		return
		;;
	--arch)
		COMPREPLY=($(compgen -W "x86 arm arm64" -- "$cur"))
		return
		;;
	--revision)
		COMPREPLY=($(compgen -W "12 13 14" -- "$cur"))
		return
		;;
	--filter)
		COMPREPLY=($(compgen -W "cell= type=state type=failure type=operation type=spec type=image type=action type=recovered type=started kind=" -- "$cur"))
		compopt -o nospace 2>/dev/null
		return
		;;
	-u | --url | --timeout | --wait | --idempotency-key | --if-match | --as | --bytes | --since | --tail | --cmdline)
		return
		;;
	esac

	if [[ "$cur" == -* ]]; then
		COMPREPLY=($(compgen -W "--socket --url --token-file --cacert --json -o --output --no-headers --timeout
			--help --version --wait --idempotency-key --if-match --apply --as --bytes --follow --since --tail
			--filter --watch --revision --arch --cell --kernel --dtb --initrd --cmdline --write-dtb" -- "$cur"))
		return
	fi

	# the command's words so far, options and their values left out
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		-s | --socket | -u | --url | --token-file | --cacert | -o | --output | --timeout | --idempotency-key | \
			--if-match | --as | --bytes | --since | --tail | --filter | --revision | --arch | --cell | --kernel | \
			--dtb | --initrd | --cmdline | --write-dtb)
			((i++))
			;;
		-*) ;;
		*) words+=("${COMP_WORDS[i]}") ;;
		esac
	done

	case "${#words[@]}:${words[0]:-}" in
	0:)
		COMPREPLY=($(compgen -W "health cells cell logs operation operations events hypervisor metrics jailhouse" -- "$cur"))
		;;
	1:cell)
		COMPREPLY=($(compgen -W "show start stop restart shutdown create replace delete upload images inject console" -- "$cur"))
		;;
	1:logs)
		COMPREPLY=($(compgen -W "$(_wardenctl_list cells)" -- "$cur"))
		;;
	1:operation)
		COMPREPLY=($(compgen -W "show" -- "$cur"))
		;;
	1:hypervisor)
		COMPREPLY=($(compgen -W "show enable disable restart" -- "$cur"))
		;;
	1:jailhouse)
		COMPREPLY=($(compgen -W "import export place" -- "$cur"))
		;;
	2:cell)
		case "${words[1]}" in
		create | replace) COMPREPLY=($(compgen -f -- "$cur")) ;;
		*) COMPREPLY=($(compgen -W "$(_wardenctl_list cells)" -- "$cur")) ;;
		esac
		;;
	2:operation)
		COMPREPLY=($(compgen -W "$(_wardenctl_list operations)" -- "$cur"))
		;;
	2:jailhouse)
		COMPREPLY=($(compgen -f -- "$cur"))
		;;
	3:cell)
		case "${words[1]}" in
		inject) COMPREPLY=($(compgen -W "hang panic crash exit stall" -- "$cur")) ;;
		upload) COMPREPLY=($(compgen -f -- "$cur")) ;;
		esac
		;;
	esac
}

complete -F _wardenctl wardenctl
