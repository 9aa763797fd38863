// Drives XO's own XAPI client (npm xen-api@4.7.6, ISC) against the simulator:
// connect, build the object cache, follow events, and report a snapshot when it appears.
// Usage: node xo_client.mjs <path to xen-api/index.mjs> <url> <password> <transport>
// Prints one JSON object per line: {"event":"cached",…} then {"event":"snapshot",…}.
import { pathToFileURL } from 'node:url'

const [, , modulePath, url, password, transport] = process.argv
const { createClient } = await import(pathToFileURL(modulePath).href)

const out = object => process.stdout.write(JSON.stringify(object) + '\n')
const timer = setTimeout(() => {
  out({ event: 'error', message: 'timed out after 60 s' })
  process.exit(2)
}, 60000)

const xapi = createClient({
  url,
  auth: { user: 'root', password },
  allowUnauthorized: true,
  transport,
})

const snapshotSeen = new Promise(resolve => {
  xapi.objects.on('add', objects => {
    for (const object of Object.values(objects)) {
      if (object.$type === 'VM' && object.is_a_snapshot) resolve(object)
    }
  })
})

try {
  await xapi.connect()
  await xapi.objectsFetched
  const all = Object.values(xapi.objects.all)
  const count = type => all.filter(object => object.$type === type).length
  out({
    event: 'cached',
    pool: xapi.pool.name_label,
    poolRef: xapi.pool.$ref,
    vms: count('VM'),
    hosts: count('host'),
    vdis: count('VDI'),
    srs: count('SR'),
    types: [...new Set(all.map(object => object.$type))].sort(),
  })
  const snapshot = await snapshotSeen
  const task = await xapi.call('task.create', 'xo-task', 'from the xen-api client')
  out({
    event: 'snapshot',
    ref: snapshot.$ref,
    name: snapshot.name_label,
    snapshotOf: snapshot.snapshot_of,
    isTemplate: snapshot.is_a_template,
    powerState: snapshot.power_state,
    memory: snapshot.memory_static_max,
    task,
  })
  await xapi.disconnect()
  clearTimeout(timer)
  process.exit(0)
} catch (error) {
  out({ event: 'error', message: String(error), code: error.code ?? null })
  process.exit(1)
}
