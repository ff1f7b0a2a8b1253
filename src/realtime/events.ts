import { z } from 'zod'

/** Events of the realtime area, registered with the kernel's schema registry at boot. */
export const realtimeEventSchemas = {
  'realtime.started': z.object({ host: z.string(), port: z.number().int(), database: z.string() }),
  'realtime.stream_gap': z.object({ reason: z.string(), channelsNotified: z.number().int() }),
  'realtime.slot_dropped': z.object({ retainedBytes: z.number(), capBytes: z.number() }),
  'realtime.client_dropped': z.object({ reason: z.string(), bufferedBytes: z.number() }),
  'realtime.wal_level_restart': z.object({ instance: z.string(), from: z.string() }),
} as const
