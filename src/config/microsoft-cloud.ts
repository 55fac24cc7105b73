// Which Microsoft cloud (public, US Government, China) an Entra authority or a Graph host belongs to: a token of one cloud is refused by another's Graph.

export type MicrosoftCloud = 'public' | 'us-government' | 'china'

interface CloudHosts {
  /** The authority hosts a token URL may be on (Entra External ID: `<tenant>.ciamlogin.com`). */
  authorities: RegExp
  /** The Graph hosts that accept this cloud's tokens. */
  graph: ReadonlySet<string>
  /** What to set when the other half names this cloud. */
  authority: string
  api: string
}

// From MSAL's cloud instances and Microsoft's national-cloud deployment list (research/graph.md §1.4).
// US Government L4 (GCC High) and L5 (DoD) share the authority; GCC (moderate) is the public cloud.
// Entra External ID tenants get their tokens at ciamlogin.com and use the public Graph.
const CLOUDS: Record<MicrosoftCloud, CloudHosts> = {
  public: {
    authorities:
      /^(login\.microsoftonline\.com|login\.microsoft\.com|login\.windows\.net|[a-z0-9-]+\.ciamlogin\.com)$/,
    graph: new Set(['graph.microsoft.com']),
    authority: 'https://login.microsoftonline.com',
    api: 'https://graph.microsoft.com/v1.0',
  },
  'us-government': {
    authorities: /^login\.microsoftonline\.us$/,
    graph: new Set(['graph.microsoft.us', 'dod-graph.microsoft.us']),
    authority: 'https://login.microsoftonline.us',
    api: 'https://graph.microsoft.us/v1.0 (https://dod-graph.microsoft.us/v1.0 for DoD)',
  },
  china: {
    authorities: /^(login\.chinacloudapi\.cn|login\.partner\.microsoftonline\.cn)$/,
    graph: new Set(['microsoftgraph.chinacloudapi.cn']),
    authority: 'https://login.chinacloudapi.cn',
    api: 'https://microsoftgraph.chinacloudapi.cn/v1.0',
  },
}

export const CLOUD_NAMES: Record<MicrosoftCloud, string> = {
  public: 'the public cloud',
  'us-government': 'the US Government cloud',
  china: 'the China cloud (21Vianet)',
}

/**
 * The host of `url` when it is written http:// and is a Microsoft cloud's (an authority or a Graph
 * host): what it carries (a credential, a token, the keys that verify tokens) would cross in the
 * clear. Null for https, and for any other host (a fake, a proxy on the machine).
 */
export function plainHttpMicrosoftHost(url: string): string | null {
  const u = new URL(url)
  if (u.protocol !== 'http:') return null
  const host = u.hostname.toLowerCase()
  const known = Object.values(CLOUDS).some((c) => c.authorities.test(host) || c.graph.has(host))
  return known ? host : null
}

function cloudOf(url: string, hosts: (c: CloudHosts) => (host: string) => boolean) {
  const host = new URL(url).hostname.toLowerCase()
  for (const [cloud, c] of Object.entries(CLOUDS) as [MicrosoftCloud, CloudHosts][]) {
    if (hosts(c)(host)) return cloud
  }
  return null
}

/**
 * The problem of an authority and a Graph URL in two different clouds: Entra refuses a token for
 * another cloud's Graph (the scope names its host), or that Graph refuses the token, so the
 * process would start and send nothing. A host of no known cloud (a fake, a proxy) is not judged.
 */
export function cloudMismatch(authorityUrl: string, apiUrl: string): string | null {
  const authority = cloudOf(authorityUrl, (c) => (h) => c.authorities.test(h))
  const graph = cloudOf(apiUrl, (c) => (h) => c.graph.has(h))
  if (!authority || !graph || authority === graph) return null
  // The side left at its default (the public cloud's) is the one to change; an External ID
  // authority is the public cloud's on purpose, so then the Graph URL is.
  const externalId = new URL(authorityUrl).hostname.toLowerCase().endsWith('.ciamlogin.com')
  const fix =
    authority === 'public' && !externalId
      ? `GRAPH_AUTHORITY_URL=${CLOUDS[graph].authority}`
      : `GRAPH_API_URL=${CLOUDS[authority].api}`
  return `GRAPH_AUTHORITY_URL is ${CLOUD_NAMES[authority]}'s and GRAPH_API_URL ${CLOUD_NAMES[graph]}'s: a token of one cloud is refused by the other's Graph, so nothing would be sent; set ${fix}`
}
