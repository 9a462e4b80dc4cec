/**
 * Plugins & models (admin): every plugin library and instance with its status (and why one
 * failed or is disabled), the models you can call, and the price history per provider and
 * model (newest first, the one in force marked), with a form to add a price.
 */
import { useMemo, useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { ApiError, request, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { defineText, useLang, useText } from '../../i18n';
import { Badge, ErrorBox, Field, Loading, Page, Table, type Column } from '../../ui/components';
import { count, dateTime, decimalToMicros, localInputToIso, money } from '../../ui/format';
import './Plugins.css';

const text = defineText({
  en: {
    title: 'Plugins & models',
    plugins: 'Plugins',
    name: 'Name',
    instance: 'Instance',
    kind: 'Kind',
    version: 'Version',
    status: 'Status',
    reason: 'Reason',
    mock: 'Mock',
    mockHint: 'A mock: not a real model',
    secrets: 'Secrets',
    file: 'File',
    schema: 'Settings schema',
    showSchema: (name: string) => `Settings schema of ${name}`,
    noSchema: 'No settings.',
    AI_PROVIDER: 'AI provider',
    NOTIFIER: 'Notifier',
    LOADED: 'Loaded',
    FAILED: 'Failed',
    DISABLED: 'Disabled',
    library: 'library only',
    models: 'Models',
    provider: 'Provider',
    model: 'Model',
    modelId: 'Model id',
    displayName: 'Display name',
    contextWindow: 'Context window',
    maxOutput: 'Max output',
    prices: 'Prices',
    pricesIntro: 'Amounts per 1M tokens. A call is priced with the price in force when it started.',
    input: 'Input',
    cachedInput: 'Cached input',
    output: 'Output',
    currency: 'Currency',
    effectiveFrom: 'In force from',
    note: 'Note',
    inForce: 'In force',
    scheduled: 'Scheduled',
    superseded: 'Superseded',
    addPrice: 'Add a price',
    badAmount: 'Amounts are decimals such as 4 or 0.25 (up to 6 decimals).',
    badCurrency: 'Enter a three-letter currency code such as CNY.',
    badWhen: 'Choose when the price takes effect.',
    required: 'Provider and model are required.',
    priceAdded: (provider: string, model: string) => `Price added for ${provider} / ${model}.`,
    noPrices: 'No prices yet.',
  },
  zh: {
    title: '插件与模型',
    plugins: '插件',
    name: '名称',
    instance: '实例',
    kind: '类型',
    version: '版本',
    status: '状态',
    reason: '原因',
    mock: '模拟',
    mockHint: '模拟插件：不是真实模型',
    secrets: '密钥',
    file: '文件',
    schema: '配置结构',
    showSchema: (name: string) => `${name} 的配置结构`,
    noSchema: '没有配置项。',
    AI_PROVIDER: 'AI 服务商',
    NOTIFIER: '通知渠道',
    LOADED: '已加载',
    FAILED: '加载失败',
    DISABLED: '已禁用',
    library: '仅库文件',
    models: '模型',
    provider: '服务商',
    model: '模型',
    modelId: '模型 ID',
    displayName: '显示名称',
    contextWindow: '上下文窗口',
    maxOutput: '最大输出',
    prices: '价格',
    pricesIntro: '金额均为每百万 Token 的价格。调用按其开始时生效的价格计费。',
    input: '输入',
    cachedInput: '缓存输入',
    output: '输出',
    currency: '币种',
    effectiveFrom: '生效时间',
    note: '备注',
    inForce: '生效中',
    scheduled: '待生效',
    superseded: '已被取代',
    addPrice: '添加价格',
    badAmount: '金额须为小数，例如 4 或 0.25（最多 6 位小数）。',
    badCurrency: '请输入三位字母的币种代码，例如 CNY。',
    badWhen: '请选择价格的生效时间。',
    required: '服务商和模型为必填项。',
    priceAdded: (provider: string, model: string) => `已为 ${provider} / ${model} 添加价格。`,
    noPrices: '暂无价格。',
  },
});

type Status = 'LOADED' | 'FAILED' | 'DISABLED';

interface Plugin {
  name: string;
  instance: string | null;
  kind: 'AI_PROVIDER' | 'NOTIFIER' | null;
  version: string | null;
  description: string | null;
  mock: boolean;
  status: Status;
  reason: string | null;
  configSchema: unknown;
  secrets: string[];
  file: string;
}

interface Model {
  provider: string;
  plugin: string;
  id: string;
  displayName: string;
  contextWindow: number | null;
  maxOutputTokens: number | null;
  mock: boolean;
}

interface Price {
  id: string;
  provider: string;
  model: string;
  inputPerMtok: string;
  cachedInputPerMtok: string;
  outputPerMtok: string;
  currency: string;
  effectiveFrom: string;
  createdAt: string;
  note: string | null;
}

const CATALOG = gql`
  query PluginsCatalog {
    plugins { name instance kind version description mock status reason configSchema secrets file }
    models { provider plugin id displayName contextWindow maxOutputTokens mock }
  }
`;

const PRICES = gql`
  query PluginsPrices {
    prices {
      id provider model inputPerMtok cachedInputPerMtok outputPerMtok currency effectiveFrom createdAt note
    }
  }
`;

const ADD_PRICE = gql`
  mutation PluginsAddPrice($input: AddPriceInput!) {
    addPrice(input: $input) { id provider model }
  }
`;

function tone(status: Status): 'ok' | 'bad' | 'muted' {
  return status === 'LOADED' ? 'ok' : status === 'FAILED' ? 'bad' : 'muted';
}

export function Plugins(_props: ViewProps) {
  const t = useText(text);
  const { locale } = useLang();
  const catalog = useQuery<{ plugins: Plugin[]; models: Model[] }>(CATALOG);

  const pluginColumns: Column<Plugin>[] = [
    {
      key: 'name',
      title: t.name,
      render: (p) => (
        <>
          <strong>{p.name}</strong>
          {p.description && <div className="muted plugins-desc">{p.description}</div>}
        </>
      ),
    },
    {
      key: 'instance',
      title: t.instance,
      render: (p) => p.instance ?? <span className="muted plugins-nowrap">{t.library}</span>,
    },
    { key: 'kind', title: t.kind, render: (p) => <span className="plugins-nowrap">{p.kind ? t[p.kind] : '—'}</span> },
    { key: 'version', title: t.version, render: (p) => p.version ?? '—' },
    {
      key: 'status',
      title: t.status,
      render: (p) => (
        <>
          <Badge tone={tone(p.status)}>{t[p.status]}</Badge>
          {p.reason && p.status !== 'LOADED' && <div className="plugins-reason">{p.reason}</div>}
        </>
      ),
    },
    {
      key: 'mock',
      title: t.mock,
      render: (p) =>
        p.mock ? (
          <Badge tone="warn">
            <span title={t.mockHint}>{t.mock}</span>
          </Badge>
        ) : (
          '—'
        ),
    },
    {
      key: 'secrets',
      title: t.secrets,
      render: (p) => (p.secrets.length ? p.secrets.map((s) => <code key={s} className="plugins-secret">{s}</code>) : '—'),
    },
    { key: 'file', title: t.file, render: (p) => <code className="plugins-file">{p.file}</code> },
    {
      key: 'schema',
      title: t.schema,
      render: (p) =>
        p.configSchema == null ? (
          <span className="muted">{t.noSchema}</span>
        ) : (
          <details className="plugins-schema">
            <summary>
              JSON <span className="sr-only">{t.showSchema(p.instance ?? p.name)}</span>
            </summary>
            <pre tabIndex={0}>{JSON.stringify(p.configSchema, null, 2)}</pre>
          </details>
        ),
    },
  ];

  const modelColumns: Column<Model>[] = [
    { key: 'provider', title: t.provider, render: (m) => m.provider },
    { key: 'id', title: t.modelId, render: (m) => <code>{m.id}</code> },
    {
      key: 'name',
      title: t.displayName,
      render: (m) => (
        <>
          {m.displayName} {m.mock && <Badge tone="warn">{t.mock}</Badge>}
        </>
      ),
    },
    { key: 'context', title: t.contextWindow, numeric: true, render: (m) => count(m.contextWindow, locale) },
    { key: 'max', title: t.maxOutput, numeric: true, render: (m) => count(m.maxOutputTokens, locale) },
  ];

  return (
    <Page title={t.title}>
      <ErrorBox error={catalog.error} onRetry={catalog.reload} />
      <Loading show={catalog.loading && !catalog.data} />
      {catalog.data && (
        <>
          <section aria-labelledby="plugins-title" className="plugins-section">
            <h2 id="plugins-title">{t.plugins}</h2>
            <Table
              columns={pluginColumns}
              rows={catalog.data.plugins}
              rowKey={(p) => `${p.name}:${p.instance ?? ''}`}
            />
          </section>
          <section aria-labelledby="models-title" className="plugins-section">
            <h2 id="models-title">{t.models}</h2>
            <Table columns={modelColumns} rows={catalog.data.models} rowKey={(m) => `${m.provider}:${m.id}`} />
          </section>
        </>
      )}
      <PriceSection models={catalog.data?.models ?? []} plugins={catalog.data?.plugins ?? []} />
    </Page>
  );
}

function PriceSection({ models, plugins }: { models: Model[]; plugins: Plugin[] }) {
  const t = useText(text);
  const { locale } = useLang();
  const prices = useQuery<{ prices: Price[] }>(PRICES);
  const [added, setAdded] = useState<string>();

  // Grouped by provider and model; in each group newest first, and the newest already in force marked.
  const groups = useMemo(() => {
    const now = Date.now();
    const map = new Map<string, Price[]>();
    for (const p of prices.data?.prices ?? []) {
      const key = `${p.provider}\u0000${p.model}`;
      map.set(key, [...(map.get(key) ?? []), p]);
    }
    return [...map.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([, list]) => {
        const sorted = [...list].sort(
          (a, b) => Date.parse(b.effectiveFrom) - Date.parse(a.effectiveFrom) || Date.parse(b.createdAt) - Date.parse(a.createdAt),
        );
        const current = sorted.find((p) => Date.parse(p.effectiveFrom) <= now);
        return { provider: sorted[0].provider, model: sorted[0].model, list: sorted, current: current?.id };
      });
  }, [prices.data]);

  const state = (p: Price, current: string | undefined) => {
    if (p.id === current) return <Badge tone="ok">{t.inForce}</Badge>;
    if (Date.parse(p.effectiveFrom) > Date.now()) return <Badge tone="info">{t.scheduled}</Badge>;
    return <Badge tone="muted">{t.superseded}</Badge>;
  };

  return (
    <section aria-labelledby="prices-title" className="plugins-section">
      <h2 id="prices-title">{t.prices}</h2>
      <p className="muted">{t.pricesIntro}</p>
      <AddPrice
        models={models}
        plugins={plugins}
        onAdded={(p) => {
          setAdded(t.priceAdded(p.provider, p.model));
          prices.reload();
        }}
      />
      {added && (
        <p className="notice" role="status">
          {added}
        </p>
      )}
      <ErrorBox error={prices.error} onRetry={prices.reload} />
      <Loading show={prices.loading && !prices.data} />
      {prices.data && groups.length === 0 && <p className="muted">{t.noPrices}</p>}
      {groups.map((g) => (
        <div key={`${g.provider}/${g.model}`} className="card plugins-price-group" data-testid="price-group">
          <h3>
            {g.provider} / <code>{g.model}</code>
          </h3>
          <Table
            columns={[
              { key: 'state', title: t.status, render: (p: Price) => state(p, g.current) },
              { key: 'from', title: t.effectiveFrom, render: (p: Price) => dateTime(p.effectiveFrom, locale) },
              { key: 'input', title: t.input, numeric: true, render: (p: Price) => money(p.inputPerMtok, p.currency, locale) },
              {
                key: 'cached',
                title: t.cachedInput,
                numeric: true,
                render: (p: Price) => money(p.cachedInputPerMtok, p.currency, locale),
              },
              { key: 'output', title: t.output, numeric: true, render: (p: Price) => money(p.outputPerMtok, p.currency, locale) },
              { key: 'note', title: t.note, render: (p: Price) => p.note ?? '' },
            ]}
            rows={g.list}
            rowKey={(p) => p.id}
          />
        </div>
      ))}
    </section>
  );
}

function AddPrice({
  models,
  plugins,
  onAdded,
}: {
  models: Model[];
  plugins: Plugin[];
  onAdded(p: { provider: string; model: string }): void;
}) {
  const t = useText(text);
  const blank = { provider: '', model: '', input: '', cachedInput: '', output: '', currency: 'CNY', effectiveFrom: '', note: '' };
  const [form, setForm] = useState(blank);
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const providers = useMemo(() => {
    const set = new Set<string>();
    for (const p of plugins) if (p.kind === 'AI_PROVIDER' && p.instance) set.add(p.instance);
    for (const m of models) set.add(m.provider);
    return [...set].sort();
  }, [models, plugins]);
  const modelIds = models.filter((m) => !form.provider || m.provider === form.provider).map((m) => m.id);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(undefined);
    const provider = form.provider.trim();
    const model = form.model.trim();
    const currency = form.currency.trim().toUpperCase();
    const when = localInputToIso(form.effectiveFrom);
    if (!provider || !model) return setProblem(t.required);
    if ([form.input, form.cachedInput, form.output].some((a) => decimalToMicros(a) == null)) return setProblem(t.badAmount);
    if (!/^[A-Z]{3}$/.test(currency)) return setProblem(t.badCurrency);
    if (!when) return setProblem(t.badWhen);
    setProblem(undefined);
    setBusy(true);
    try {
      await request(ADD_PRICE, {
        input: {
          provider,
          model,
          input: form.input.trim(),
          cachedInput: form.cachedInput.trim(),
          output: form.output.trim(),
          currency,
          effectiveFrom: when,
          note: form.note.trim() || null,
        },
      });
      setForm(blank);
      onAdded({ provider, model });
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };

  const set = (key: keyof typeof blank) => (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value });

  return (
    <form className="card plugins-add" onSubmit={submit} aria-labelledby="plugins-add-title" data-testid="add-price">
      <h3 id="plugins-add-title">{t.addPrice}</h3>
      <div className="plugins-add-grid">
        <Field label={t.provider}>
          <input list="plugins-providers" value={form.provider} onChange={set('provider')} autoComplete="off" required />
        </Field>
        <datalist id="plugins-providers">
          {providers.map((p) => (
            <option key={p} value={p} />
          ))}
        </datalist>
        <Field label={t.model}>
          <input list="plugins-models" value={form.model} onChange={set('model')} autoComplete="off" required />
        </Field>
        <datalist id="plugins-models">
          {modelIds.map((m) => (
            <option key={m} value={m} />
          ))}
        </datalist>
        <Field label={t.input}>
          <input inputMode="decimal" placeholder="4.00" value={form.input} onChange={set('input')} required />
        </Field>
        <Field label={t.cachedInput}>
          <input inputMode="decimal" placeholder="1.00" value={form.cachedInput} onChange={set('cachedInput')} required />
        </Field>
        <Field label={t.output}>
          <input inputMode="decimal" placeholder="16.00" value={form.output} onChange={set('output')} required />
        </Field>
        <Field label={t.currency}>
          <input value={form.currency} onChange={set('currency')} maxLength={3} autoComplete="off" required />
        </Field>
        <Field label={t.effectiveFrom}>
          <input type="datetime-local" value={form.effectiveFrom} onChange={set('effectiveFrom')} required />
        </Field>
        <Field label={t.note}>
          <input value={form.note} onChange={set('note')} autoComplete="off" />
        </Field>
      </div>
      {problem && (
        <p className="error" role="alert">
          {problem}
        </p>
      )}
      <ErrorBox error={error} />
      <div className="row">
        <button type="submit" className="primary" disabled={busy}>
          {t.addPrice}
        </button>
      </div>
    </form>
  );
}
