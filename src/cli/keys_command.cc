// `vigil keys create|list|revoke|roll --data-dir D`: the API keys of a data dir's `vigil serve`
// (auth/key_store.h). A running server picks the change up within a second.
#include <pwd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>

#include "auth/audit_log.h"
#include "auth/authenticator.h"
#include "auth/key_store.h"
#include "cli/cli_util.h"
#include "serve/key_routes.h"
#include "vigil/time.h"

namespace vigil::cli {
namespace {

std::string When(int64_t t) { return t == 0 ? "-" : FormatRfc3339(t); }

// A key event from the command line, in the data dir's audit log before the command ends.
void Audit(const std::string& data_dir, auth::AuditEvent event) {
  // The account's name from the system, not from $USER, which the caller sets.
  const passwd* pw = ::getpwuid(::getuid());
  event.actor = "cli:" + (pw != nullptr ? std::string(pw->pw_name) : std::to_string(::getuid()));
  event.source = "local";
  auto log = auth::AuditLog::Open(data_dir);
  Status st = log.status();
  if (log.ok()) {
    (*log)->Record(std::move(event));
    st = (*log)->Flush();
  }
  if (!st.ok()) std::fprintf(stderr, "vigil keys: warning: %s\n", st.message().c_str());
}

void PrintIssued(const auth::KeyStore::Issued& issued) {
  std::printf("%s\n", issued.secret.c_str());
  std::fprintf(stderr,
               "vigil keys: key %s (%s, role %s) created; its secret, above, is shown once: "
               "store it now\n",
               issued.record.id.c_str(), issued.record.name.c_str(),
               std::string(RoleName(issued.record.role)).c_str());
}

}  // namespace

void AddKeysCommand(CLI::App& app, int* exit_code) {
  auto* cmd =
      app.add_subcommand("keys", "Create, list, revoke and roll the API keys of vigil serve");
  cmd->require_subcommand(1);
  struct Args {
    std::string data_dir = "data", role, name, id, expires_in, old_valid_for = "24h";
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto add_dir = [&](CLI::App* c) {
    c->add_option("--data-dir", args->data_dir, "The server's data dir (its auth.db)")
        ->capture_default_str()
        ->envname("VIGIL_DATA_DIR");
  };
  auto open = [args]() { return auth::KeyStore::Open(args->data_dir); };

  auto* create = cmd->add_subcommand("create", "Issue a key; prints its secret once, on stdout");
  add_dir(create);
  create->add_option("--role", args->role, "admin, analyst, scorer, processor or viewer")
      ->required();
  create->add_option("--name", args->name, "Who or what uses it (e.g. checkout-service)")
      ->required();
  create->add_option("--expires-in", args->expires_in, "Lifetime, e.g. 90d or 12h (default: none)");
  create->callback([args, open, exit_code] {
    auto role = ParseRole(args->role);
    if (!role.ok()) {
      *exit_code = Fail("keys create", role.status().WithContext("--role"));
      return;
    }
    const int64_t now = auth::NowSeconds();
    int64_t expires_at = 0;
    if (!args->expires_in.empty()) {
      auto d = ParseDuration(args->expires_in);
      if (!d.ok()) {
        *exit_code = Fail("keys create", d.status().WithContext("--expires-in"));
        return;
      }
      expires_at = now + d->count();
    }
    auto store = open();
    if (!store.ok()) {
      *exit_code = Fail("keys create", store.status());
      return;
    }
    auto issued = (*store)->Create(*role, args->name, expires_at, now);
    Audit(args->data_dir, {"", "key.create", issued.ok() ? issued->record.id : args->name,
                           issued.ok() ? "ok" : "failed", "",
                           issued.ok() ? "role " + args->role + ", name " + args->name
                                       : issued.status().message()});
    if (!issued.ok()) {
      *exit_code = Fail("keys create", issued.status());
      return;
    }
    PrintIssued(*issued);
  });

  auto* list = cmd->add_subcommand("list", "Every key (never a secret)");
  add_dir(list);
  list->add_flag("--json", args->json, "One JSON object a line");
  list->callback([args, open, exit_code] {
    auto store = open();
    if (!store.ok()) {
      *exit_code = Fail("keys list", store.status());
      return;
    }
    auto keys = (*store)->List();
    if (!keys.ok()) {
      *exit_code = Fail("keys list", keys.status());
      return;
    }
    const int64_t now = auth::NowSeconds();
    if (!args->json) {
      std::printf("%-20s %-9s %-8s %-11s %-20s %-20s %-20s %s\n", "id", "role", "state", "hint",
                  "created", "last used", "expires", "name");
    }
    for (const auth::KeyRecord& k : *keys) {
      if (args->json) {
        std::printf("%s\n", KeyJson(k, now).c_str());
        continue;
      }
      const char* state = k.revoked_at != 0 ? "revoked" : k.ActiveAt(now) ? "active" : "expired";
      std::printf("%-20s %-9s %-8s %-11s %-20s %-20s %-20s %s\n", k.id.c_str(),
                  std::string(RoleName(k.role)).c_str(), state,
                  (std::string(auth::kKeyPrefix) + "..." + k.hint).c_str(),
                  When(k.created_at).c_str(), When(k.last_used_at).c_str(),
                  When(k.expires_at).c_str(), k.name.c_str());
    }
  });

  auto* revoke = cmd->add_subcommand("revoke", "Revoke a key at once");
  add_dir(revoke);
  revoke->add_option("id", args->id, "The key's id (key_...)")->required();
  revoke->callback([args, open, exit_code] {
    auto store = open();
    if (!store.ok()) {
      *exit_code = Fail("keys revoke", store.status());
      return;
    }
    auto key = (*store)->Revoke(args->id, auth::NowSeconds());
    Audit(args->data_dir, {"", "key.revoke", args->id, key.ok() ? "ok" : "failed", "",
                           key.ok() ? "" : key.status().message()});
    if (!key.ok()) {
      *exit_code = Fail("keys revoke", key.status());
      return;
    }
    std::printf("key %s (%s) revoked at %s\n", key->id.c_str(), key->name.c_str(),
                When(key->revoked_at).c_str());
  });

  auto* roll = cmd->add_subcommand(
      "roll", "Issue a replacement (same name and role); the old key stays valid a while");
  add_dir(roll);
  roll->add_option("id", args->id, "The key's id (key_...)")->required();
  roll->add_option("--old-valid-for", args->old_valid_for,
                   "How long the old key stays valid, e.g. 24h, 7d or 0s")
      ->capture_default_str();
  roll->callback([args, open, exit_code] {
    auto keep = ParseDuration(args->old_valid_for);
    if (!keep.ok()) {
      *exit_code = Fail("keys roll", keep.status().WithContext("--old-valid-for"));
      return;
    }
    auto store = open();
    if (!store.ok()) {
      *exit_code = Fail("keys roll", store.status());
      return;
    }
    const int64_t now = auth::NowSeconds();
    auto issued = (*store)->Roll(args->id, now + keep->count(), now);
    Audit(args->data_dir,
          {"", "key.roll", args->id, issued.ok() ? "ok" : "failed", "",
           issued.ok() ? "replaced by " + issued->record.id : issued.status().message()});
    if (!issued.ok()) {
      *exit_code = Fail("keys roll", issued.status());
      return;
    }
    PrintIssued(*issued);
    std::fprintf(stderr, "vigil keys: the old key %s stays valid until %s\n", args->id.c_str(),
                 When(now + keep->count()).c_str());
  });
}

void AddAuditCommand(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("audit", "The audit log of vigil serve and vigil keys");
  cmd->require_subcommand(1);
  auto data_dir = std::make_shared<std::string>("data");
  auto* verify = cmd->add_subcommand(
      "verify", "Check the audit log's hash chain: exit 0 when intact, 1 naming the first break");
  verify->add_option("--data-dir", *data_dir, "The server's data dir (its audit.log)")
      ->capture_default_str()
      ->envname("VIGIL_DATA_DIR");
  verify->callback([data_dir, exit_code] {
    auto v = auth::AuditLog::Verify(*data_dir);
    if (!v.ok()) {
      *exit_code = Fail("audit verify", v.status());
      return;
    }
    if (!v->intact) {
      std::fprintf(stderr, "vigil audit verify: BROKEN after %llu intact entries: %s\n",
                   static_cast<unsigned long long>(v->entries), v->problem.c_str());
      *exit_code = 1;
      return;
    }
    std::printf("audit log intact: %llu entries, each chained to the one before\n",
                static_cast<unsigned long long>(v->entries));
  });
}

}  // namespace vigil::cli
