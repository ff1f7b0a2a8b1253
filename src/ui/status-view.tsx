import React, { useEffect, useState } from 'react'
import { Box, Text, render, useApp, useInput } from 'ink'
import type { StatusOutput } from '../api/core.js'
import { renderStatus, replicationText } from '../cli/render.js'

/** Live topology view for `magflock status --watch` (ink is imported only here). */
function StatusView(props: { fetch: () => Promise<StatusOutput>; intervalMs: number; initial: StatusOutput }) {
  const { exit } = useApp()
  const [s, setS] = useState(props.initial)
  const [err, setErr] = useState<string | undefined>()
  const [at, setAt] = useState(new Date())
  useInput((input, key) => {
    if (input === 'q' || key.escape || (key.ctrl && input === 'c')) exit()
  })
  useEffect(() => {
    const t = setInterval(() => {
      props
        .fetch()
        .then((next) => {
          setS(next)
          setErr(undefined)
          setAt(new Date())
        })
        .catch((e: Error) => setErr(e.message))
    }, props.intervalMs)
    return () => clearInterval(t)
  }, [])
  return (
    <Box flexDirection="column">
      <Text bold>
        MagFlock — {s.kernel.stateDir} — env {s.kernel.env} — kernel pid {s.kernel.pid} — {at.toLocaleTimeString()}
      </Text>
      {s.instances.map((i) => (
        <Text key={i.name}>
          <Text color={i.role === 'primary' ? 'green' : i.role === 'fenced' ? 'red' : 'cyan'}>{i.role.padEnd(10)}</Text> {i.name.padEnd(12)}{' '}
          <Text color={i.state === 'running' ? 'green' : 'yellow'}>{i.state.padEnd(10)}</Text> {i.host}:{i.port} pid {i.pid ?? '-'}
          {i.restarts ? `  restarts ${i.restarts}` : ''}
          {replicationText(i)}
        </Text>
      ))}
      {s.components.map((c) => (
        <Text key={c.name} dimColor={c.healthy}>
          component {c.name.padEnd(18)} {c.state.padEnd(10)} {c.healthy ? 'healthy' : 'UNHEALTHY'} {c.detail ?? ''}
        </Text>
      ))}
      {err ? <Text color="red">kernel unreachable: {err}</Text> : null}
      <Text dimColor>q to quit</Text>
    </Box>
  )
}

export async function watchStatus(
  fetch: () => Promise<StatusOutput>,
  intervalMs: number,
  initial: StatusOutput,
  opts: { clearFirst?: boolean } = {},
): Promise<void> {
  if (!process.stdout.isTTY || !process.stdin.isTTY) {
    // Not a terminal: print a plain snapshot per interval until interrupted.
    for (;;) {
      process.stdout.write(`--- ${new Date().toISOString()}\n${renderStatus(await fetch())}\n`)
      await new Promise((r) => setTimeout(r, intervalMs))
    }
  }
  // The caller may have drawn a plain first frame while ink loaded: the live view replaces it.
  if (opts.clearFirst) process.stdout.write('\u001B[2J\u001B[H')
  const app = render(<StatusView fetch={fetch} intervalMs={intervalMs} initial={initial} />)
  await app.waitUntilExit()
}
