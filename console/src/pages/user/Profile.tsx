/**
 * The signed-in user's profile: display name, avatar and preferred language (kept in the
 * account's settings, so it follows them to other browsers), a password change (which ends
 * their other sessions), two-step sign-in (`TwoStepPanel`), and their sessions (`SessionsPanel`).
 */
import { useEffect, useState, type FormEvent } from 'react';
import type { ViewProps } from '../../App';
import { ApiError, request, toApiError } from '../../api/client';
import { gql } from '../../api/gql';
import { useQuery } from '../../api/hooks';
import { accountChanged, current, store } from '../../api/session';
import { common } from '../../i18n/common';
import { LANGS, defineText, useLang, useText, type Lang } from '../../i18n';
import { ErrorBox, Field, Loading, Page } from '../../ui/components';
import { dateTime } from '../../ui/format';
import { SessionsPanel } from './Sessions';
import { TwoStepPanel } from './TwoStep';
import '../ops.css';

const text = defineText({
  en: {
    title: 'Profile',
    account: 'Account',
    email: 'Email',
    role: 'Role',
    USER: 'User',
    ADMIN: 'Administrator',
    since: 'Member since',
    wechat: 'WeChat',
    wechatLinked: 'Linked: the mini-program signs you in.',
    wechatNone: 'Not linked. Link it from the mini-program.',
    unlink: 'Unlink',
    wechatOnly: 'This account signs in with WeChat only.',
    details: 'Profile details',
    displayName: 'Display name',
    displayNameHint: '1 to 64 characters',
    avatarUrl: 'Avatar URL',
    avatarHint: 'An http(s) address of an image; leave empty for none',
    language: 'Preferred language',
    saved: 'Profile saved.',
    needName: 'Enter a display name (1 to 64 characters).',
    badUrl: 'The avatar URL must start with http:// or https://.',
    password: 'Change password',
    passwordNote: 'Your other sessions (other browsers and devices) will be signed out.',
    currentPassword: 'Current password',
    newPassword: 'New password',
    repeatPassword: 'New password again',
    change: 'Change password',
    changed: 'Password changed. Your other sessions were signed out.',
    mismatch: 'The new passwords do not match.',
    needBoth: 'Enter your current and your new password.',
    wrongCurrent: 'The current password is wrong.',
  },
  zh: {
    title: '个人资料',
    account: '账户',
    email: '电子邮件',
    role: '角色',
    USER: '普通用户',
    ADMIN: '管理员',
    since: '注册时间',
    wechat: '微信',
    wechatLinked: '已绑定：可通过小程序登录。',
    wechatNone: '未绑定。请在小程序中绑定。',
    unlink: '解除绑定',
    wechatOnly: '此账户只能通过微信登录。',
    details: '资料',
    displayName: '显示名称',
    displayNameHint: '1 到 64 个字符',
    avatarUrl: '头像地址',
    avatarHint: '图片的 http(s) 地址；留空表示不设头像',
    language: '首选语言',
    saved: '资料已保存。',
    needName: '请输入显示名称（1 到 64 个字符）。',
    badUrl: '头像地址须以 http:// 或 https:// 开头。',
    password: '修改密码',
    passwordNote: '你的其他会话（其他浏览器和设备）将被退出登录。',
    currentPassword: '当前密码',
    newPassword: '新密码',
    repeatPassword: '再次输入新密码',
    change: '修改密码',
    changed: '密码已修改，其他会话已退出登录。',
    mismatch: '两次输入的新密码不一致。',
    needBoth: '请输入当前密码和新密码。',
    wrongCurrent: '当前密码不正确。',
  },
});

interface Me {
  id: string;
  email: string;
  displayName: string;
  avatarUrl: string | null;
  settings: Record<string, unknown> | null;
  role: string;
  createdAt: string;
  wechatLinked: boolean;
}

const ME = gql`
  query ProfilePageMe {
    me {
      id
      email
      displayName
      avatarUrl
      settings
      role
      createdAt
      wechatLinked
    }
  }
`;

const UNLINK_WECHAT = gql`
  mutation ProfileUnlinkWechat {
    unlinkWechat { id wechatLinked }
  }
`;

const UPDATE = gql`
  mutation ProfilePageUpdate($input: UpdateProfileInput!) {
    updateProfile(input: $input) {
      id
      email
      displayName
      avatarUrl
      settings
      role
      createdAt
      wechatLinked
    }
  }
`;

const CHANGE_PASSWORD = gql`
  mutation ProfilePageChangePassword($currentPassword: String!, $newPassword: String!) {
    changePassword(currentPassword: $currentPassword, newPassword: $newPassword)
  }
`;


export function Profile(_props: ViewProps) {
  const t = useText(text);
  const { locale } = useLang();
  const me = useQuery<{ me: Me }>(ME);
  const user = me.data?.me;
  return (
    <Page title={t.title}>
      <ErrorBox error={me.error} onRetry={me.reload} />
      <Loading show={me.loading && !user} />
      {user && (
        <div className="grid-2">
          <div className="stack">
            <section className="card detail" aria-labelledby="profile-account">
              <h2 id="profile-account">{t.account}</h2>
              <dl>
                <dt>{t.email}</dt>
                <dd>{user.email}</dd>
                <dt>{t.role}</dt>
                <dd>{user.role === 'ADMIN' ? t.ADMIN : t.USER}</dd>
                <dt>{t.since}</dt>
                <dd>{dateTime(user.createdAt, locale)}</dd>
                <dt>{t.wechat}</dt>
                <dd>
                  <WeChatLink user={user} onChanged={me.reload} />
                </dd>
              </dl>
            </section>
            <ProfileForm user={user} onSaved={me.reload} />
          </div>
          <div className="stack">
            <TwoStepPanel />
            <PasswordForm />
          </div>
        </div>
      )}
      {user && <SessionsPanel />}
    </Page>
  );
}

/** Whether WeChat is linked (linking happens in the mini-program, which has the code). */
function WeChatLink({ user, onChanged }: { user: Me; onChanged(): void }) {
  const t = useText(text);
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  if (!user.wechatLinked) return <>{t.wechatNone}</>;
  if (user.email.endsWith('@wechat.invalid')) return <>{t.wechatOnly}</>;
  const unlink = async () => {
    setBusy(true);
    setError(undefined);
    try {
      await request(UNLINK_WECHAT);
      onChanged();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      {t.wechatLinked}{' '}
      <button type="button" className="link" disabled={busy} onClick={() => void unlink()}>
        {t.unlink}
      </button>
      <ErrorBox error={error} />
    </>
  );
}

function ProfileForm({ user, onSaved }: { user: Me; onSaved(): void }) {
  const t = useText(text);
  const c = useText(common);
  const { lang, setLang } = useLang();
  const saved = user.settings?.lang;
  const [name, setName] = useState(user.displayName);
  const [avatar, setAvatar] = useState(user.avatarUrl ?? '');
  const [language, setLanguage] = useState<Lang>(saved === 'en' || saved === 'zh' ? saved : lang);
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  // The language saved in the account wins over this browser's choice, once, on arrival.
  useEffect(() => {
    if ((saved === 'en' || saved === 'zh') && saved !== lang) setLang(saved);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [saved]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(undefined);
    setError(undefined);
    setDone(false);
    const displayName = name.trim();
    if (!displayName || displayName.length > 64) return setProblem(t.needName);
    const avatarUrl = avatar.trim();
    if (avatarUrl && !/^https?:\/\//i.test(avatarUrl)) return setProblem(t.badUrl);
    setBusy(true);
    try {
      // Settings are replaced as a whole: keep what other clients stored there.
      const settings = { ...(user.settings ?? {}), lang: language };
      const d = await request<{ updateProfile: Me }>(UPDATE, {
        input: { displayName, avatarUrl: avatarUrl || null, settings },
      });
      setLang(language);
      const session = current();
      if (session) store({ ...session, user: { ...session.user, displayName: d.updateProfile.displayName } });
      setDone(true);
      onSaved();
    } catch (err) {
      setError(toApiError(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="card" aria-labelledby="profile-details">
      <h2 id="profile-details">{t.details}</h2>
      <form className="stack" onSubmit={(e) => void submit(e)} noValidate>
        <Field label={t.displayName} hint={t.displayNameHint}>
          <input value={name} maxLength={64} onChange={(e) => setName(e.target.value)} autoComplete="nickname" />
        </Field>
        <Field label={t.avatarUrl} hint={t.avatarHint}>
          <input type="url" value={avatar} onChange={(e) => setAvatar(e.target.value)} placeholder="https://" />
        </Field>
        <Field label={t.language}>
          <select value={language} onChange={(e) => setLanguage(e.target.value as Lang)}>
            {LANGS.map((l) => (
              <option key={l} value={l}>
                {l === 'en' ? 'English' : '中文'}
              </option>
            ))}
          </select>
        </Field>
        {problem && (
          <p className="error" role="alert">
            {problem}
          </p>
        )}
        <ErrorBox error={error} />
        {done && (
          <p className="ok-text" role="status">
            {t.saved}
          </p>
        )}
        <div>
          <button type="submit" className="primary" disabled={busy}>
            {c.save}
          </button>
        </div>
      </form>
    </section>
  );
}

function PasswordForm() {
  const t = useText(text);
  const [form, setForm] = useState({ current: '', next: '', repeat: '' });
  const [problem, setProblem] = useState<string>();
  const [error, setError] = useState<ApiError>();
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(undefined);
    setError(undefined);
    setDone(false);
    if (!form.current || !form.next) return setProblem(t.needBoth);
    if (form.next !== form.repeat) return setProblem(t.mismatch);
    setBusy(true);
    try {
      await request(CHANGE_PASSWORD, { currentPassword: form.current, newPassword: form.next });
      setForm({ current: '', next: '', repeat: '' });
      setDone(true);
      accountChanged();
    } catch (err) {
      const failure = toApiError(err);
      if (failure.code === 'BAD_USER_INPUT' && failure.extensions.field === 'currentPassword') setProblem(t.wrongCurrent);
      setError(failure);
    } finally {
      setBusy(false);
    }
  };
  const set = (key: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement>) => setForm((f) => ({ ...f, [key]: e.target.value }));

  return (
    <section className="card" aria-labelledby="profile-password">
      <h2 id="profile-password">{t.password}</h2>
      <p className="muted">{t.passwordNote}</p>
      <form className="stack" onSubmit={(e) => void submit(e)} noValidate>
        <Field label={t.currentPassword}>
          <input type="password" value={form.current} onChange={set('current')} autoComplete="current-password" />
        </Field>
        <Field label={t.newPassword}>
          <input type="password" value={form.next} onChange={set('next')} autoComplete="new-password" />
        </Field>
        <Field label={t.repeatPassword}>
          <input type="password" value={form.repeat} onChange={set('repeat')} autoComplete="new-password" />
        </Field>
        {problem && (
          <p className="error" role="alert">
            {problem}
          </p>
        )}
        <ErrorBox error={error} />
        {done && (
          <p className="ok-text" role="status">
            {t.changed}
          </p>
        )}
        <div>
          <button type="submit" className="primary" disabled={busy}>
            {t.change}
          </button>
        </div>
      </form>
    </section>
  );
}
