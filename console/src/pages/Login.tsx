/** Sign-in: email and password, then the view the role starts on. */
import { useState, type FormEvent } from 'react';
import { ApiError, request, toApiError } from '../api/client';
import { gql } from '../api/gql';
import { store, type Session } from '../api/session';
import { common } from '../i18n/common';
import { defineText, LANGS, useLang, useText, type Lang } from '../i18n';
import { ErrorBox, Field } from '../ui/components';
import { href, navigate } from '../router';

const text = defineText({
  en: {
    title: 'Sign in',
    email: 'Email',
    password: 'Password',
    submit: 'Sign in',
    busy: 'Signing in…',
    noAccount: 'No account yet?',
    register: 'Create one',
    tagline: 'One gateway for your team’s AI: calls, costs, budgets and alerts.',
  },
  zh: {
    title: '登录',
    email: '邮箱',
    password: '密码',
    submit: '登录',
    busy: '正在登录…',
    noAccount: '还没有账号？',
    register: '注册',
    tagline: '团队 AI 的统一网关：调用、费用、预算与告警。',
  },
});

const LOGIN = gql`
  mutation ConsoleLogin($input: LoginInput!) {
    login(input: $input) {
      accessToken
      accessTokenExpiresAt
      refreshToken
      refreshTokenExpiresAt
      user { id email displayName role }
    }
  }
`;

export function LangSwitch() {
  const { lang, setLang } = useLang();
  const t = useText(common);
  return (
    <select className="lang-corner" value={lang} onChange={(e) => setLang(e.target.value as Lang)} aria-label={t.language}>
      {LANGS.map((l) => (
        <option key={l} value={l}>
          {l === 'en' ? 'English' : '中文'}
        </option>
      ))}
    </select>
  );
}

export function Login({ notice }: { notice?: string }) {
  const t = useText(text);
  const c = useText(common);
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError>();
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const data = await request<{ login: Session }>(LOGIN, { input: { email, password } });
      store(data.login);
      navigate(data.login.user.role === 'ADMIN' ? '/overview' : '/chat', undefined, true);
    } catch (e) {
      setError(toApiError(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="auth" id="main">
      <LangSwitch />
      <form className="card auth-card" onSubmit={(e) => void submit(e)}>
        <h1>
          {c.appName} · {t.title}
        </h1>
        <p className="muted">{t.tagline}</p>
        {notice && (
          <p className="notice" role="status">
            {notice}
          </p>
        )}
        <ErrorBox error={error} />
        <Field label={t.email}>
          <input type="email" autoComplete="username" required value={email} onChange={(e) => setEmail(e.target.value)} />
        </Field>
        <Field label={t.password}>
          <input
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </Field>
        <button type="submit" className="primary" disabled={busy}>
          {busy ? t.busy : t.submit}
        </button>
        <p>
          {t.noAccount} <a href={href('/register')}>{t.register}</a>
        </p>
      </form>
    </main>
  );
}
