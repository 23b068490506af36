#include "auth/key_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "auth/authenticator.h"

namespace vigil::auth {
namespace {

class KeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = ::testing::TempDir() + "keys_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    auto s = KeyStore::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_;
  std::unique_ptr<KeyStore> store_;
  static constexpr int64_t kNow = 1'800'000'000;
};

TEST(KeyFormat, ASecretHasItsPrefixLengthAndChecksum) {
  const std::string a = NewKeySecret(), b = NewKeySecret();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 40u);
  EXPECT_TRUE(a.starts_with("vgk_"));
  EXPECT_TRUE(LooksLikeKey(a));
  // Any one character changed breaks the checksum (or the alphabet).
  for (size_t i = 4; i < a.size(); ++i) {
    std::string typo = a;
    typo[i] = typo[i] == 'x' ? 'y' : 'x';
    EXPECT_FALSE(LooksLikeKey(typo)) << i;
  }
  EXPECT_FALSE(LooksLikeKey(a.substr(0, 39)));
  EXPECT_FALSE(LooksLikeKey("ghp_" + a.substr(4)));
  EXPECT_FALSE(LooksLikeKey(""));
}

TEST_F(KeyStoreTest, AKeyAuthenticatesAsItsRoleAndOnlyItsHashIsStored) {
  auto issued = store_->Create(Role::kScorer, "checkout", 0, kNow);
  ASSERT_TRUE(issued.ok()) << issued.status().ToString();
  auto who = store_->Authenticate(issued->secret, kNow);
  ASSERT_TRUE(who.ok()) << who.status().ToString();
  EXPECT_EQ(who->roles.Names(), "scorer");
  EXPECT_EQ(who->id, issued->record.id);
  EXPECT_EQ(who->name, "checkout");
  EXPECT_EQ(issued->record.hint, issued->secret.substr(36));
  store_.reset();  // flushes
  for (const char* f : {"auth.db", "auth.db-wal"}) {
    std::ifstream in(dir_ + "/" + f, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(issued->secret), std::string::npos) << f;
  }
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/auth.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(KeyStoreTest, UnknownRevokedAndExpiredKeysAreRefusedSayingWhich) {
  EXPECT_EQ(store_->Authenticate(NewKeySecret(), kNow).status().message(),
            "the API key is not known");
  EXPECT_EQ(store_->Authenticate("Bearer x", kNow).status().code(), StatusCode::kUnauthenticated);
  auto a = store_->Create(Role::kAdmin, "a", kNow + 60, kNow);
  auto b = store_->Create(Role::kViewer, "b", 0, kNow);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(store_->Authenticate(a->secret, kNow + 59).ok());
  EXPECT_EQ(store_->Authenticate(a->secret, kNow + 60).status().message(),
            "the API key has expired");
  ASSERT_TRUE(store_->Revoke(b->record.id, kNow + 1).ok());
  EXPECT_EQ(store_->Authenticate(b->secret, kNow + 2).status().message(),
            "the API key was revoked");
  // Revoking twice keeps the first time; an unknown id is NotFound.
  auto again = store_->Revoke(b->record.id, kNow + 5);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->revoked_at, kNow + 1);
  EXPECT_EQ(store_->Revoke("key_nothere", kNow).status().code(), StatusCode::kNotFound);
}

TEST_F(KeyStoreTest, BadKeysAreNotMade) {
  EXPECT_EQ(store_->Create(Role::kScorer, "", 0, kNow).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Create(Role::kScorer, std::string(201, 'n'), 0, kNow).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Create(Role::kScorer, "x", kNow, kNow).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Create(Role::kPublic, "x", 0, kNow).status().code(),
            StatusCode::kInvalidArgument);
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(KeyStoreTest, RollingKeepsTheOldKeyUntilTheTimeChosen) {
  auto old = store_->Create(Role::kProcessor, "proc", 0, kNow);
  ASSERT_TRUE(old.ok());
  auto rolled = store_->Roll(old->record.id, kNow + 100, kNow + 10);
  ASSERT_TRUE(rolled.ok()) << rolled.status().ToString();
  EXPECT_NE(rolled->secret, old->secret);
  EXPECT_EQ(rolled->record.role, Role::kProcessor);
  EXPECT_EQ(rolled->record.name, "proc");
  EXPECT_TRUE(store_->Authenticate(old->secret, kNow + 99).ok());
  EXPECT_FALSE(store_->Authenticate(old->secret, kNow + 100).ok());
  EXPECT_TRUE(store_->Authenticate(rolled->secret, kNow + 1000).ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].rolled_to, rolled->record.id);
  EXPECT_EQ((*list)[0].expires_at, kNow + 100);
  // A key that has ended cannot be rolled; nor can the old key end before now.
  EXPECT_EQ(store_->Roll(old->record.id, kNow + 500, kNow + 200).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Roll(rolled->record.id, kNow, kNow + 200).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->List()->size(), 2u);
}

// `vigil keys` is another process: another connection to the same file.
TEST_F(KeyStoreTest, AnotherProcesssChangesArriveOnRefresh) {
  auto other = KeyStore::Open(dir_);
  ASSERT_TRUE(other.ok());
  auto issued = (*other)->Create(Role::kAnalyst, "elsewhere", 0, kNow);
  ASSERT_TRUE(issued.ok());
  EXPECT_FALSE(store_->Authenticate(issued->secret, kNow).ok());
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_TRUE(store_->Authenticate(issued->secret, kNow).ok());
  ASSERT_TRUE((*other)->Revoke(issued->record.id, kNow + 1).ok());
  ASSERT_TRUE(store_->Refresh().ok());
  EXPECT_EQ(store_->Authenticate(issued->secret, kNow + 2).status().message(),
            "the API key was revoked");
}

TEST_F(KeyStoreTest, LastUseIsWrittenOnRefresh) {
  auto issued = store_->Create(Role::kViewer, "v", 0, kNow);
  ASSERT_TRUE(issued.ok());
  ASSERT_TRUE(store_->Authenticate(issued->secret, kNow + 30).ok());
  ASSERT_TRUE(store_->Refresh().ok());
  auto other = KeyStore::Open(dir_);
  ASSERT_TRUE(other.ok());
  auto list = (*other)->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].last_used_at, kNow + 30);
}

TEST(RoleRule, AdminEverywhereViewerRoutesForEveryoneOthersAsNamed) {
  EXPECT_TRUE(Admits(Role::kPublic, Role::kViewer));
  EXPECT_TRUE(Admits(Role::kScorer, Role::kAdmin));
  EXPECT_TRUE(Admits(Role::kViewer, Role::kScorer));
  EXPECT_TRUE(Admits(Role::kScorer | Role::kProcessor, Role::kProcessor));
  EXPECT_FALSE(Admits(Role::kScorer | Role::kProcessor, Role::kAnalyst));
  EXPECT_FALSE(Admits(Role::kAdmin, Role::kAnalyst));
  EXPECT_FALSE(Admits(Role::kAnalyst, Role::kViewer));
  EXPECT_EQ(ParseRole("root").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseRole("processor"), Role::kProcessor);
}

TEST(AuthenticatorTest, TheBearerSchemeAndAFirstAdminKey) {
  const std::string dir = ::testing::TempDir() + "authenticator_first";
  std::filesystem::remove_all(dir);
  auto auth = Authenticator::Open(dir);
  ASSERT_TRUE(auth.ok());
  auto first = (*auth)->EnsureAdminKey();
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(LooksLikeKey(*first));
  std::ifstream in(dir + "/admin.key");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, *first);
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/admin.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*(*auth)->EnsureAdminKey(), "");  // one exists now
  EXPECT_TRUE((*auth)->Authenticate("Bearer " + *first)->roles.Has(Role::kAdmin));
  EXPECT_TRUE((*auth)->Authenticate("bearer  " + *first + " ")->roles.Has(Role::kAdmin));
  EXPECT_FALSE((*auth)->Authenticate("Basic " + *first).ok());
  EXPECT_FALSE((*auth)->Authenticate(*first).ok());
  // A key made by another process works on its first call.
  auto other = KeyStore::Open(dir);
  ASSERT_TRUE(other.ok());
  auto fresh = (*other)->Create(Role::kScorer, "new", 0, NowSeconds());
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE((*auth)->Authenticate("Bearer " + fresh->secret).ok());
  // With every admin key revoked, a restart mints no new one: the operator decided.
  auto list = (*other)->List();
  ASSERT_TRUE(list.ok());
  ASSERT_TRUE((*other)->Revoke((*list)[0].id, NowSeconds()).ok());
  ASSERT_TRUE((*auth)->keys().Refresh().ok());
  EXPECT_EQ(*(*auth)->EnsureAdminKey(), "");
  EXPECT_FALSE((*auth)->keys().HasActiveAdmin(NowSeconds()));
  auth->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace vigil::auth
