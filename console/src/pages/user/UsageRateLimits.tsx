/** The personal usage page's rate-limits card: requests and tokens per minute. */
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { useLang, useText } from '../../i18n';
import { ErrorBox, Loading, Tile, Tiles } from '../../ui/components';
import { count } from '../../ui/format';
import { text } from './Usage.text';

const RATE_LIMITS = gql`
  query UsagePageRateLimits {
    rateLimits {
      requestsPerMinute
      tokensPerMinute
    }
  }
`;

export function RateLimits() {
  const t = useText(text);
  const { locale } = useLang();
  const limits = useQuery<{ rateLimits: { requestsPerMinute: number | null; tokensPerMinute: number | null } }>(RATE_LIMITS);
  const r = limits.data?.rateLimits;
  return (
    <section className="card" aria-labelledby="usage-rate-limits">
      <h2 id="usage-rate-limits">{t.rateLimits}</h2>
      <ErrorBox error={limits.error} onRetry={limits.reload} />
      <Loading show={limits.loading && !r} />
      {r && (
        <Tiles>
          <Tile label={t.rpm} value={r.requestsPerMinute == null ? t.unlimited : count(r.requestsPerMinute, locale)} />
          <Tile label={t.tpm} value={r.tokensPerMinute == null ? t.unlimited : count(r.tokensPerMinute, locale)} />
        </Tiles>
      )}
    </section>
  );
}
